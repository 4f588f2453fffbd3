import Synchronization

/// Tells any number of listeners that something changed: each listener's stream holds at most
/// one pending signal, so a slow listener sees "changed since you last looked", never a backlog.
public final class ChangeSignal: Sendable {
    private struct Listeners {
        var continuations: [Int: AsyncStream<Void>.Continuation] = [:]
        var next = 0
    }

    private let listeners = Mutex(Listeners())

    public init() {}

    /// A stream of signals; with `now`, it starts with one.
    public func stream(signalNow: Bool = false) -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        if signalNow { continuation.yield() }
        let id = listeners.withLock { listeners in
            defer { listeners.next += 1 }
            listeners.continuations[listeners.next] = continuation
            return listeners.next
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.listeners.withLock { $0.continuations.removeValue(forKey: id) }
        }
        return stream
    }

    public func signal() {
        for continuation in listeners.withLock({ Array($0.continuations.values) }) { continuation.yield() }
    }

    /// Ends every stream.
    public func finish() {
        for continuation in listeners.withLock({ listeners in
            defer { listeners.continuations = [:] }
            return Array(listeners.continuations.values)
        }) { continuation.finish() }
    }
}
