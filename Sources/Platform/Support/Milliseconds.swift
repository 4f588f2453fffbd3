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
