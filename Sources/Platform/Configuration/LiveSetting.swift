import Synchronization

/// A value that configuration may replace while the process runs. A request reads `current` once
/// and keeps what it got, so it works with the old settings or the new ones, never a mix.
public final class LiveSetting<Value: Sendable>: Sendable {
    private let storage: Mutex<Value>

    public init(_ value: Value) {
        storage = Mutex(value)
    }

    public var current: Value { storage.withLock { $0 } }

    public func replace(with value: Value) {
        storage.withLock { $0 = value }
    }
}

/// A switch read on hot paths (every log call, every request): one atomic load.
public final class LiveFlag: Sendable {
    private let storage: Atomic<Bool>

    public init(_ value: Bool) {
        storage = Atomic(value)
    }

    public var isOn: Bool { storage.load(ordering: .relaxed) }

    public func set(_ value: Bool) {
        storage.store(value, ordering: .relaxed)
    }
}
