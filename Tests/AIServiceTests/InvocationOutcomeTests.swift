@testable import AIService
import Platform
import Testing

/// The `outcome` label of `aisaas_ai_requests_total`, which the provider alerts and the
/// provider_failure refusals are made of.
@Suite("Invocation outcomes")
struct InvocationOutcomeTests {
    static func failure(_ kind: DomainError.Kind, _ reason: ErrorReason? = nil) -> DomainError {
        DomainError(kind, "failed", reason: reason?.rawValue)
    }

    @Test("a provider turning a request down as invalid is the client's doing, not a provider failure")
    func providerRejectionIsNotAFailure() {
        typealias Outcome = InvocationTelemetry.Outcome
        let cases: [(any Error, Bool, Outcome)] = [
            (Self.failure(.failedPrecondition, .providerRejectedRequest), true, .providerRejected),
            (Self.failure(.unavailable, .providerRateLimited), true, .providerError),
            (Self.failure(.failedPrecondition, .providerRejectedCredentials), true, .providerError),
            (Self.failure(.upstreamFailure), true, .providerError),
            (Self.failure(.deadlineExceeded), true, .providerError),
            (Self.failure(.resourceExhausted, .quotaExceeded), true, .refused),
            (Self.failure(.invalidArgument), false, .rejected),
            (CancellationError(), true, .cancelled),
        ]
        for (error, admitted, expected) in cases {
            #expect(InvocationTelemetry.outcome(error: error, cancelled: false, admitted: admitted) == expected, "\(error)")
        }
        #expect(InvocationTelemetry.outcome(error: nil, cancelled: false, admitted: true) == .ok)
    }
}
