import Foundation
import Synchronization

/// Identifiers that sort by creation time: 48 bits of milliseconds since the epoch followed by
/// 80 random bits, written as 26 characters of Crockford base 32 (the ULID layout).
public enum SortableID {
    fileprivate static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    /// The process's generator: identifiers made by this process are strictly increasing.
    private static let shared = Generator()

    public static func make(at date: Date = Date()) -> String {
        shared.make(at: date)
    }

    /// Whether `text` has the shape of an identifier made by `make`.
    public static func isWellFormed(_ text: String) -> Bool {
        text.utf8.count == 26 && text.utf8.allSatisfy { alphabet.contains($0) }
    }

    /// Identifiers strictly increasing among those it makes (tests make their own, so that the
    /// times they choose do not move the process's identifiers).
    public final class Generator: Sendable {
        /// The last identifier's 128 bits: within one millisecond, the next one is that plus one.
        private let last = Mutex<(high: UInt64, low: UInt64)>((0, 0))

        public init() {}

        public func make(at date: Date = Date()) -> String {
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
                out[index] = SortableID.alphabet[Int(low & 0x1F)]
                low = low >> 5 | high << 59
                high >>= 5
            }
            return String(decoding: out, as: UTF8.self)
        }
    }
}
