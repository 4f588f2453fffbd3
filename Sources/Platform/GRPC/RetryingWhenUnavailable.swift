import GRPCCore

/// Runs `call` again when it fails with UNAVAILABLE, at most `attempts` times in all, pausing
/// `backoff` before the second attempt and twice as long before each later one.
///
/// For idempotent calls only: UNAVAILABLE after the request was sent means the instance went
/// away (or is shutting down) and may or may not have done the work. Round-robin sends the next
/// attempt to another instance. Paid invocations and signature checks (which record their
/// nonce) must never go through here.
public func retryingWhenUnavailable<Result>(
    attempts: Int = 3,
    backoff: Duration = .milliseconds(20),
    _ call: () async throws -> Result
) async throws -> Result {
    var pause = backoff
    for _ in 1..<max(attempts, 1) {
        do {
            return try await call()
        } catch let error as RPCError where error.code == .unavailable {
            try await Task.sleep(for: pause)
            pause *= 2
        }
    }
    return try await call()
}
