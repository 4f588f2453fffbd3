import Foundation
import Logging
import Platform
import Synchronization
import Tracing

/// What an invocation is about to call.
struct InvocationTarget: Sendable {
    var kind: InvocationKind
    var provider: String
    var model: String
    var chatModelId: String
    /// A chat completion streamed to the client.
    var streamed = false
    /// Called through `/v1`: its record says the status in OpenAI's terms, as the client got it.
    var openAIWire = false
    /// What the call spends at least, as far as its request tells before it runs (the prompt,
    /// estimated; the answer's limit; a speech's characters): quota admission reserves no less.
    var expected = Consumption()
}

extension Consumption {
    /// The part of an expected call that its request carries (prompt tokens, a speech's
    /// characters), without the answer it may get.
    var sent: Consumption {
        Consumption(promptTokens: promptTokens, totalTokens: promptTokens, characters: characters)
    }
}

/// What a call sent its provider that its request did not tell before it ran (a recording's
/// length is known once it is converted): a call cut short after sending it books it too.
final class SentToProvider: Sendable {
    private let consumption = Mutex(Consumption())

    func record(_ sent: Consumption) {
        consumption.withLock { $0 = sent }
    }

    var value: Consumption { consumption.withLock { $0 } }
}

/// An invocation that passed the rate limit and the quota, and must be finished exactly once.
struct Admission: Sendable {
    var caller: Caller
    var target: InvocationTarget
    var ticket: QuotaTicket?
    var started: ContinuousClock.Instant
    /// The caller's rate limit after this call; nil when there is none.
    var rateLimit: RateLimitState?
    /// False for a call refused before the provider was asked.
    var admitted = true
    /// When the provider was called (admission done).
    var providerStarted: ContinuousClock.Instant
    /// The provider call's span, with tracing on.
    var span: (any Span)?
    /// Whether the span carries the prompt and the answer (`GenAIContent`).
    var capturesContent: Bool

    init(
        caller: Caller, target: InvocationTarget, ticket: QuotaTicket?, started: ContinuousClock.Instant,
        rateLimit: RateLimitState? = nil, admitted: Bool = true, span: (any Span)? = nil, capturesContent: Bool = false
    ) {
        self.caller = caller
        self.target = target
        self.ticket = ticket
        self.started = started
        self.rateLimit = rateLimit
        self.admitted = admitted
        self.providerStarted = ContinuousClock.now
        self.span = span
        self.capturesContent = span != nil && capturesContent
    }

    /// Runs `call` (the provider's) in the span's context, so the provider's request carries it.
    func calling<Value>(_ call: () async throws -> Value) async throws -> Value {
        guard let span else { return try await call() }
        return try await InstrumentationContext.$current.withValue(span.context) { try await call() }
    }
}

/// Every invocation runs: rate limit → quota admission → provider → usage record + quota
/// settlement. The last step also runs when the provider failed or the call was cancelled.
struct InvocationPipeline: Sendable {
    let rateLimiter: (any RateLimiter)?
    let quotas: any QuotaStore
    let prices: PriceTable
    let logger: Logger
    let instruments: InvocationTelemetry
    /// Concurrent invocations' bookings go to the ledger together.
    private let bookings: WriteBatcher<InvocationBooking, (any Error)?>

    /// Bookings kept while the database cannot take them; nil: such a booking is logged and lost.
    private let pending: PendingBookings?

    init(
        rateLimiter: (any RateLimiter)?, quotas: any QuotaStore, ledger: any InvocationLedger, prices: PriceTable, logger: Logger,
        instruments: InvocationTelemetry = .disabled, observeBookingBatch: (@Sendable (Int) -> Void)? = nil, pending: PendingBookings? = nil
    ) {
        self.rateLimiter = rateLimiter
        self.instruments = instruments
        self.quotas = quotas
        self.prices = prices
        self.logger = logger
        self.pending = pending
        bookings = WriteBatcher(writesInline: ledger.booksInline, observeBatch: observeBookingBatch) { await ledger.book($0) }
    }

    /// Rate limit and quota; a refusal is recorded, then thrown.
    func admit(_ target: InvocationTarget, caller: Caller) async throws -> Admission {
        let started = ContinuousClock.now
        do {
            let rateLimit = try await rateLimiter?.acquire(subject: caller.rateLimitSubject, now: Date())
            let estimate = CallEstimate(
                tokens: target.expected.totalTokens,
                cost: prices.cost(provider: target.provider, model: target.model, of: target.expected)
            )
            let ticket = try await quotas.admit(userId: caller.userId, estimate: estimate, now: Date())
            return Admission(
                caller: caller, target: target, ticket: ticket, started: started, rateLimit: rateLimit, span: instruments.startCall(target),
                capturesContent: instruments.telemetry.capturesGenAIContent
            )
        } catch {
            await finish(Admission(caller: caller, target: target, ticket: nil, started: started, admitted: false), consumed: Consumption(), error: error)
            throw error
        }
    }

    /// Records the invocation and settles its reservation, together with whatever other
    /// invocations finish meanwhile (one transaction). A cancelled caller cannot cut the
    /// bookkeeping short; failures are logged, not thrown, so they never hide the call's own
    /// outcome.
    /// `note` is appended to the record's error text (e.g. that the usage is an estimate).
    func finish(_ admission: Admission, consumed: Consumption, error: (any Error)?, cancelled: Bool = false, note: String? = nil) async {
        let latency = ContinuousClock.now - admission.started
        let cost = prices.cost(provider: admission.target.provider, model: admission.target.model, of: consumed)
        instruments.finished(admission, consumed: consumed, cost: cost, error: error, cancelled: cancelled)
        let now = Date()
        let timedOut = cancelled && admission.caller.timedOut()
        let record = UsageRecord(
            id: SortableID.make(at: now), userId: admission.caller.userId, accessKey: admission.caller.accessKey ?? "",
            apiKeyId: admission.caller.apiKeyId ?? "", chatModelId: admission.target.chatModelId, provider: admission.target.provider, model: admission.target.model,
            kind: admission.target.kind, consumption: consumed, cost: cost, requestId: admission.caller.requestId,
            latencyMs: Int(latency.components.seconds * 1000 + latency.components.attoseconds / 1_000_000_000_000_000),
            status: timedOut ? 504 : cancelled ? Self.clientClosedRequest : error.map { Self.httpStatus($0, openAIWire: admission.target.openAIWire) } ?? 200,
            error: [
                timedOut ? "cancelled: the caller's time limit for the call passed" : cancelled ? "cancelled: the client went away" : error.map(Self.describe) ?? "",
                note ?? "",
            ]
                .filter { !$0.isEmpty }.joined(separator: "; "),
            createdAt: now
        )
        let settlesQuota = admission.ticket != nil || consumed.totalTokens > 0 || cost > 0
        let settlement = settlesQuota
            ? QuotaSettlement(userId: record.userId, ticket: admission.ticket, tokens: consumed.totalTokens, cost: cost)
            : nil
        // The batcher writes in a task of its own, so a cancelled caller cannot cut it short.
        let booking = InvocationBooking(record: record, settlement: settlement)
        if let error = await bookings.submit(booking) {
            if DatabaseFailure.isUnavailable(error), let pending, pending.keep(booking) {
                logger.warning("usage record and quota settlement kept until the database answers", metadata: [
                    "error": "\(String(reflecting: error))", "request-id": "\(record.requestId)", "kept": "\(pending.count)",
                ])
                return
            }
            logger.error("usage record and quota settlement failed", metadata: [
                "error": "\(String(reflecting: error))", "user-id": "\(record.userId)", "request-id": "\(record.requestId)",
            ])
        }
    }

    /// Records an invocation refused before admission (invalid input, unknown chat model, no
    /// provider, no ffmpeg): one usage row with zero amounts; the quota is not touched.
    func recordRejected(_ target: InvocationTarget, caller: Caller, error: any Error, started: ContinuousClock.Instant) async {
        await finish(Admission(caller: caller, target: target, ticket: nil, started: started, admitted: false), consumed: Consumption(), error: error)
    }

    /// Admits, runs `call`, finishes. `call` answers its result and what it consumed.
    /// `sent` is told what the call sent beyond what its request told (`SentToProvider`).
    func run<Result: Sendable>(
        _ target: InvocationTarget, caller: Caller, sent: SentToProvider? = nil, onAdmitted: (Admission) -> Void = { _ in },
        _ call: () async throws -> (Result, Consumption)
    ) async throws -> Result {
        let admission = try await admit(target, caller: caller)
        onAdmitted(admission)
        do {
            let (result, consumed) = try await admission.calling(call)
            await finish(admission, consumed: consumed, error: nil)
            return result
        } catch {
            await finish(admission, failedWith: error, alsoSent: sent?.value)
            throw error
        }
    }

    /// Finishes a call whose provider step failed or was cancelled. The request went to the
    /// provider, which bills what it was sent even when the caller leaves before the answer: a
    /// call cut short books that much (`alsoSent`: the audio it had sent), estimated, and says so.
    func finish(_ admission: Admission, failedWith error: any Error, alsoSent: Consumption? = nil) async {
        let cancelled = error is CancellationError || Task.isCancelled
        var sent = cancelled ? admission.target.expected.sent : Consumption()
        if cancelled, let alsoSent { sent.audioSeconds += alsoSent.audioSeconds }
        await finish(admission, consumed: sent, error: error, cancelled: cancelled, note: sent == Consumption() ? nil : "usage estimated: the call was cut short")
    }

    static let clientClosedRequest = clientClosedRequestStatus

    /// The HTTP status the gateway gives the client for `error` (the table in `ErrorReason`; on
    /// `/v1`, in OpenAI's terms).
    static func httpStatus(_ error: any Error, openAIWire: Bool = false) -> Int {
        switch error {
        case let domain as DomainError:
            openAIWire ? ErrorReason.openAIStatus(for: domain.httpStatus, reason: domain.reason.flatMap(ErrorReason.init(rawValue:))) : domain.httpStatus
        case is CancellationError: clientClosedRequest
        case let error where DatabaseFailure.isUnavailable(error): 503
        default: 500
        }
    }

    /// Domain messages are written for clients and never carry secrets; anything else stays in the log.
    static func describe(_ error: any Error) -> String {
        switch error {
        case let domain as DomainError: return domain.message
        case is CancellationError: return "cancelled"
        default: return "internal error"
        }
    }
}
