/// Thrown by `withTimeLimit` when the limit passed first.
public struct TimeLimitExceeded: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "the time limit passed" }
}

/// Runs `operation`, cancelling it and throwing `TimeLimitExceeded` if it takes longer than `limit`.
public func withTimeLimit<T: Sendable>(_ limit: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
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
