/// A page of a list and where it sits.
public struct Page<Item: Sendable>: Sendable {
    public var items: [Item]
    public var current: Int
    public var pageSize: Int
    public var total: Int

    public init(items: [Item], current: Int, pageSize: Int, total: Int) {
        self.items = items
        self.current = current
        self.pageSize = pageSize
        self.total = total
    }
}

/// `current` (1-based, default 1) and `pageSize` (1…100, default 50), checked together: every
/// service's lists page alike.
public struct PageRequest: Sendable, Equatable {
    public var current: Int
    public var pageSize: Int
    public var offset: Int { (current - 1) * pageSize }

    public static let defaultSize = 50
    public static let maxSize = 100
    /// Keeps `offset` far from overflow whatever the caller sends (the wire carries int32).
    public static let maxCurrent = Int(Int32.max)

    public static func check(current: Int?, pageSize: Int?) throws(DomainError) -> PageRequest {
        var violations = Violations()
        if let current, !(1...maxCurrent).contains(current) { violations.add("current", "current must be 1 to \(maxCurrent)") }
        if let pageSize, !(1...maxSize).contains(pageSize) {
            violations.add("pageSize", "pageSize must be 1 to \(maxSize)")
        }
        try violations.throwIfAny()
        return PageRequest(current: current ?? 1, pageSize: pageSize ?? defaultSize)
    }
}
