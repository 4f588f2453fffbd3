import Foundation
import Synchronization

/// Identifiers that sort by creation time: 48 bits of milliseconds since the epoch followed by
/// 80 random bits, written as 26 characters of Crockford base 32 (the ULID layout).
public enum SortableID {
    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    /// The last identifier's bytes: within one millisecond, the next one is that plus one, so
    /// identifiers made by this process are strictly increasing.
    private static let last = Mutex<[UInt8]>([])

    public static func make(at date: Date = Date()) -> String {
        let millis = UInt64(max(0, date.timeIntervalSince1970 * 1000)) & 0xFFFF_FFFF_FFFF
        var bytes = (0..<6).map { UInt8(truncatingIfNeeded: millis >> (8 * (5 - UInt64($0)))) }
        bytes += RandomText.bytes(10)
        bytes = last.withLock { last in
            if last.count == 16, last.lexicographicallyPrecedes(bytes) == false {
                var next = last
                for index in next.indices.reversed() {
                    next[index] &+= 1
                    if next[index] != 0 { break }
                }
                last = next
            } else {
                last = bytes
            }
            return last
        }
        // 128 bits in 26 groups of 5, the first group padded with two leading zero bits.
        var out = [UInt8]()
        out.reserveCapacity(26)
        for group in 0..<26 {
            var value = 0
            for bit in (group * 5 - 2)..<(group * 5 + 3) where bit >= 0 {
                value = (value << 1) | Int((bytes[bit / 8] >> (7 - UInt8(bit % 8))) & 1)
            }
            out.append(alphabet[value])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether `text` has the shape of an identifier made by `make`.
    public static func isWellFormed(_ text: String) -> Bool {
        text.utf8.count == 26 && text.utf8.allSatisfy { alphabet.contains($0) }
    }
}

/// Random text from a cryptographic generator (the system's, backed by getrandom on Linux).
public enum RandomText {
    private static let alphanumerics = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)

    /// `count` characters of `[A-Za-z0-9]`, each drawn uniformly.
    public static func alphanumeric(_ count: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<count).map { _ in alphanumerics[Int.random(in: 0..<alphanumerics.count, using: &generator)] }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `count` random bytes.
    public static func bytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }
}

extension Date {
    /// Milliseconds since the epoch, the unit of every timestamp on the wire.
    public var millisecondsSince1970: Double { (timeIntervalSince1970 * 1000).rounded() }

    public init(millisecondsSince1970 millis: Double) {
        self.init(timeIntervalSince1970: millis / 1000)
    }
}
