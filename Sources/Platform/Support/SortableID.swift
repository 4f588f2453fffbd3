import Foundation
import Synchronization

/// Identifiers that sort by creation time: 48 bits of milliseconds since the epoch followed by
/// 80 random bits, written as 26 characters of Crockford base 32 (the ULID layout).
public enum SortableID {
    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    /// The last identifier's 128 bits: within one millisecond, the next one is that plus one, so
    /// identifiers made by this process are strictly increasing.
    private static let last = Mutex<(high: UInt64, low: UInt64)>((0, 0))

    public static func make(at date: Date = Date()) -> String {
        let millis = UInt64(max(0, date.timeIntervalSince1970 * 1000)) & 0xFFFF_FFFF_FFFF
        // Two draws from the system generator (each one a system call), not one per byte: this
        // runs for every request that comes without an id of its own.
        var generator = SystemRandomNumberGenerator()
        let drawn = (high: millis << 16 | generator.next() & 0xFFFF, low: generator.next() as UInt64)
        let bits = last.withLock { last in
            if drawn.high > last.high || (drawn.high == last.high && drawn.low > last.low) {
                last = drawn
            } else {
                let (low, carry) = last.low.addingReportingOverflow(1)
                last = (last.high &+ (carry ? 1 : 0), low)
            }
            return last
        }
        // 128 bits in 26 groups of 5, the first group padded with two leading zero bits.
        var out = [UInt8](repeating: 0, count: 26)
        var (high, low) = bits
        for index in stride(from: 25, through: 0, by: -1) {
            out[index] = alphabet[Int(low & 0x1F)]
            low = low >> 5 | high << 59
            high >>= 5
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
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count + 7)
        while bytes.count < count {
            withUnsafeBytes(of: generator.next() as UInt64) { bytes += $0 }
        }
        return Array(bytes.prefix(count))
    }
}

extension Date {
    /// Milliseconds since the epoch, the unit of every timestamp on the wire.
    public var millisecondsSince1970: Double { (timeIntervalSince1970 * 1000).rounded() }

    public init(millisecondsSince1970 millis: Double) {
        self.init(timeIntervalSince1970: millis / 1000)
    }
}
