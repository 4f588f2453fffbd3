import Synchronization

/// Lets one task at a time through, in the order they came. Taking a free lock does not suspend.
/// Waiting ignores cancellation: what it guards is short, and a task that gave up while queued
/// would otherwise have to leave the queue.
public final class AsyncSerialLock: Sendable {
    private struct State {
        var held = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    public init() {}

    /// Callers waiting for the lock (not the one holding it).
    public var waitingCount: Int {
        state.withLock { $0.waiters.count }
    }

    public func withLock<T>(_ body: () async throws -> T) async rethrows -> T {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        let free = state.withLock { state in
            if state.held { return false }
            state.held = true
            return true
        }
        if free { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let nowFree = state.withLock { state in
                if state.held {
                    state.waiters.append(continuation)
                    return false
                }
                state.held = true
                return true
            }
            if nowFree { continuation.resume() }
        }
    }

    private func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            // The lock passes straight to the oldest waiter: it stays held.
            if state.waiters.isEmpty {
                state.held = false
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}
