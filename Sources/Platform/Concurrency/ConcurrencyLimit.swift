import Synchronization

/// Runs at most `limit` bodies at once; the others wait their turn in the order they came. A
/// waiter cancelled before its turn leaves the queue and throws `CancellationError`.
public final class ConcurrencyLimit: Sendable {
    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var running = 0
        var waiting: [Waiter] = []
        var lastID: UInt64 = 0
    }

    public let limit: Int
    private let state = Mutex(State())

    public init(_ limit: Int) {
        self.limit = max(1, limit)
    }

    /// Bodies running now, and callers waiting for a turn.
    public var load: (running: Int, waiting: Int) {
        state.withLock { ($0.running, $0.waiting.count) }
    }

    public func run<T>(_ body: () async throws -> T) async throws -> T {
        try await takeTurn()
        defer { passTurn() }
        return try await body()
    }

    private func takeTurn() async throws {
        let queued = state.withLock { state -> UInt64? in
            guard state.running >= limit else {
                state.running += 1
                return nil
            }
            state.lastID += 1
            return state.lastID
        }
        guard let id = queued else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                // Cancelled before joining the queue: the handler below found nothing to resume.
                let cancelled = state.withLock { state -> Bool in
                    if Task.isCancelled { return true }
                    state.waiting.append(Waiter(id: id, continuation: continuation))
                    return false
                }
                if cancelled { continuation.resume(throwing: CancellationError()) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                guard let index = state.waiting.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiting.remove(at: index)
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Hands the turn to the first waiter, or gives it back.
    private func passTurn() {
        let next = state.withLock { state -> Waiter? in
            guard !state.waiting.isEmpty else {
                state.running -= 1
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.continuation.resume()
    }
}
