import NIOCore
import Synchronization

/// Thrown by `withTimeLimit` when the limit passed first.
public struct TimeLimitExceeded: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "the time limit passed" }
}

/// Runs `operation`, cancelling it and throwing `TimeLimitExceeded` if it takes longer than `limit`.
///
/// On an event loop the limit is a timer of the loop and the operation a task on the same loop:
/// nothing crosses threads. Elsewhere, a task group races the operation against a sleep.
public func withTimeLimit<T: Sendable>(_ limit: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    guard let loop = EventLoopTaskExecutor.current?.eventLoop else {
        return try await withTimeLimitOnPool(limit, operation)
    }
    let task = Task.onCurrentLoop { try await operation() }
    let expired = ExpiryFlag()
    let timer = loop.scheduleTask(in: TimeAmount(limit)) {
        expired.set()
        task.cancel()
    }
    defer { timer.cancel() }
    do {
        return try await task.valueCancelledWithCaller
    } catch {
        if expired.isSet { throw TimeLimitExceeded() }
        throw error
    }
}

private func withTimeLimitOnPool<T: Sendable>(_ limit: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: limit)
            throw TimeLimitExceeded()
        }
        defer { group.cancelAll() }
        guard let first = try await group.next() else { throw CancellationError() }
        return first
    }
}

private final class ExpiryFlag: Sendable {
    private let value = Atomic<Bool>(false)

    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
