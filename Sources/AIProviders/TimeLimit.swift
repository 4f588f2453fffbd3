/// Thrown by `withTimeLimit` when the limit passed first.
struct TimeLimitExceeded: Error {}

/// Runs `operation`, cancelling it and throwing `TimeLimitExceeded` if it takes longer than `limit`.
func withTimeLimit<T: Sendable>(_ limit: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
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
