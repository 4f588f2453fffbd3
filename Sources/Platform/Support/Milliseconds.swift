import Foundation

/// Timestamps as the platform writes them: milliseconds since the epoch.
extension Date {
    /// Milliseconds since the epoch, the unit of every timestamp on the wire.
    public var millisecondsSince1970: Double { (timeIntervalSince1970 * 1000).rounded() }

    public init(millisecondsSince1970 millis: Double) {
        self.init(timeIntervalSince1970: millis / 1000)
    }

    /// Whole milliseconds since the epoch, as the databases store them.
    public var milliseconds: Int64 { Int64((timeIntervalSince1970 * 1000).rounded()) }

    public init(milliseconds: Int64) {
        self.init(timeIntervalSince1970: Double(milliseconds) / 1000)
    }
}

extension Duration {
    /// Milliseconds with three decimals ("12.345"), for logs, without `String(format:)`.
    public var millisecondsText: String {
        let (seconds, attoseconds) = components
        let microseconds = max(0, seconds * 1_000_000 + attoseconds / 1_000_000_000_000)
        let fraction = String(microseconds % 1000)
        return "\(microseconds / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }
}
