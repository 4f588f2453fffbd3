import GRPCCore
import Synchronization
import Testing
@testable import Platform

private final class Attempts: Sendable {
    private let count = Mutex(0)

    /// Counts an attempt and returns its number, starting at 1.
    func next() -> Int { count.withLock { $0 += 1; return $0 } }
    var made: Int { count.withLock { $0 } }
}

@Suite("retrying when unavailable")
struct RetryingWhenUnavailableTests {
    @Test func anUnavailableCallIsRunAgainUntilItSucceeds() async throws {
        let attempts = Attempts()
        let answer = try await retryingWhenUnavailable(backoff: .milliseconds(1)) {
            if attempts.next() < 3 { throw RPCError(code: .unavailable, message: "instance went away") }
            return "answer"
        }
        #expect(answer == "answer")
        #expect(attempts.made == 3)
    }

    @Test func itGivesUpAfterTheLastAttemptWithTheLastError() async {
        let attempts = Attempts()
        let error = await #expect(throws: RPCError.self) {
            try await retryingWhenUnavailable(attempts: 4, backoff: .milliseconds(1)) {
                throw RPCError(code: .unavailable, message: "attempt \(attempts.next())")
            }
        }
        #expect(attempts.made == 4)
        #expect(error?.message == "attempt 4")
    }

    @Test("other failures are the call's answer and are not retried", arguments: [RPCError.Code.notFound, .internalError, .deadlineExceeded, .cancelled])
    func otherFailuresAreNotRetried(code: RPCError.Code) async {
        let attempts = Attempts()
        do {
            _ = try await retryingWhenUnavailable(backoff: .milliseconds(1)) {
                _ = attempts.next()
                throw RPCError(code: code, message: "no")
            }
            Issue.record("the call succeeded")
        } catch let error as RPCError {
            #expect(error.code == code)
        } catch {
            Issue.record("unexpected \(error)")
        }
        #expect(attempts.made == 1)
    }

    @Test func aCancelledCallerStopsWaitingForTheNextAttempt() async {
        let attempts = Attempts()
        let task = Task {
            try await retryingWhenUnavailable(backoff: .seconds(60)) {
                _ = attempts.next()
                throw RPCError(code: .unavailable, message: "down")
            }
        }
        while attempts.made == 0 { await Task.yield() }
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(attempts.made == 1)
    }
}
