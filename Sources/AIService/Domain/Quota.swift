import Platform
import Foundation

/// A user's budgets (nil: unlimited) and what has been spent against them.
public struct Quota: Sendable, Equatable {
    public var userId: String
    public var tokenBudget: Int?
    public var costBudget: Double?
    public var tokensUsed: Int
    public var costUsed: Double
    public var updatedAt: Date

    public static func unlimited(_ userId: String) -> Quota {
        Quota(userId: userId, tokenBudget: nil, costBudget: nil, tokensUsed: 0, costUsed: 0, updatedAt: Date(timeIntervalSince1970: 0))
    }
}

/// A reservation against a budget, held while one call runs; settled once it ends.
public struct QuotaTicket: Sendable, Equatable {
    public var id: String
    public var userId: String
    public var tokens: Int
    public var cost: Double
}

/// What a call is known to spend at least before it runs, for admission: its prompt (estimated
/// from its text), the answer's limit when the request sets one (`max_tokens`), the characters
/// of a speech, priced. Zero when nothing is known.
public struct CallEstimate: Sendable, Equatable {
    public var tokens: Int
    public var cost: Double

    public init(tokens: Int, cost: Double) {
        self.tokens = max(0, tokens)
        self.cost = cost.isFinite && cost > 0 ? cost : 0
    }

    public static let unknown = CallEstimate(tokens: 0, cost: 0)
}

/// Budgets shared by every replica through the database.
///
/// Guarantee (see `SQLQuotaStore` for the statements): a call is admitted only while
/// `used + reserved < budget`, and admission reserves an estimate in the same atomic statement,
/// so concurrent admissions — in any process — see each other's reservations. The estimate is the
/// larger of the call's own `CallEstimate` and the largest call the user has settled so far,
/// never below a small positive floor (so calls that cost 0 in a dimension still count as small,
/// known calls); before the first call settles it is the whole remaining budget, so that first
/// call runs alone and concurrent ones wait for it. Hence the budget is overspent by at most one
/// call, as long as no call spends more than it reserved: one that answers more than any call
/// before it without a `max_tokens` may add that excess.
/// `QuotaExceeded` (402) means the budget is spent (`used >= budget`); while only what the calls in
/// flight reserved fills it, a call waits for them to settle, up to the policy's `firstCallWait`,
/// and then hears `QuotaBusy` (429, Retry-After). A reservation whose call
/// never settles (the process died) expires after the store's reservation lifetime and is
/// released by the next admission of that user.
public protocol QuotaStore: Sendable {
    /// Reserves room for one call of at least `estimate`, or nil when the user has no budget
    /// (nothing to reserve). Throws `.resourceExhausted` reason `QuotaExceeded` when the budget is spent.
    func admit(userId: String, estimate: CallEstimate, now: Date) async throws -> QuotaTicket?
    func quota(userId: String) async throws -> Quota
    func setQuota(userId: String, tokenBudget: Int?, costBudget: Double?, resetUsage: Bool, now: Date) async throws -> Quota
}

/// How admission treats budgets (`AI_QUOTA_*`); the configuration center may change it.
public struct QuotaPolicy: Sendable, Equatable {
    /// How long a reservation outlives a call that never settled it.
    public var reservationLifetime: TimeInterval = 900
    /// The least a settled call counts as when admission estimates the next one.
    public var minimumCallTokens: Int = 1
    public var minimumCallCost: Double = 0.000_001
    /// How long a call waits while the reservations of calls in flight fill the budget (the
    /// user's first budgeted call reserves all of it).
    public var firstCallWait: Duration = .seconds(10)

    public init(reservationLifetime: TimeInterval = 900, minimumCallTokens: Int = 1, minimumCallCost: Double = 0.000_001, firstCallWait: Duration = .seconds(10)) {
        self.reservationLifetime = reservationLifetime
        self.minimumCallTokens = minimumCallTokens
        self.minimumCallCost = minimumCallCost
        self.firstCallWait = firstCallWait
    }
}

/// What one finished call books against its user's quota: what it consumed, and the release
/// of its reservation if it held one. Booked for failed calls too.
public struct QuotaSettlement: Sendable, Equatable {
    public var userId: String
    public var ticket: QuotaTicket?
    public var tokens: Int
    public var cost: Double
}

/// What a subject's rate limit looks like after a request (OpenAI's `x-ratelimit-*` headers).
public struct RateLimitState: Sendable, Equatable {
    public var limit: Int
    public var remaining: Int
    /// Seconds until the window has room for one more request again (0: it has room now).
    public var resetSeconds: Int

    public init(limit: Int, remaining: Int, resetSeconds: Int) {
        self.limit = limit
        self.remaining = remaining
        self.resetSeconds = resetSeconds
    }
}

/// Requests per minute per access key: counted in the database so that replicas share it
/// (`SQLRateLimiter`), or in the process when it runs the only AI service (`MemoryRateLimiter`).
public protocol RateLimiter: Sendable {
    /// Counts one request and answers what is left; throws `.resourceExhausted` reason
    /// `RateLimited` (with `retryAfterSeconds`) when the subject is over its limit.
    @discardableResult
    func acquire(subject: String, now: Date) async throws -> RateLimitState
}

/// The sliding window both limiters keep: admissions per subject in one-second buckets. A request
/// is admitted when the buckets of the last 61 seconds (this one and the 60 before) hold fewer
/// than the limit: any 60-second window [t, t+60) lies within the 61 buckets its last admission
/// counted, so it can never hold more than the limit. Refused requests are not counted.
public enum RateWindow {
    /// Seconds counted besides the current one.
    public static let windowSeconds: Int64 = 60

    /// Seconds until the window has room for one more request: when enough of its oldest
    /// admissions have left it.
    public static func retryAfter(_ buckets: [(second: Int64, hits: Int64)], limit: Int64, now: Int64) -> Int {
        var total = buckets.reduce(0) { $0 + $1.hits }
        for bucket in buckets.sorted(by: { $0.second < $1.second }) {
            guard total >= limit else { break }
            total -= bucket.hits
            if total < limit { return Int(max(1, bucket.second + windowSeconds + 1 - now)) }
        }
        return 1
    }

    /// The refusal of a request over the limit.
    public static func refusal(limitPerMinute: Int, retryAfter: Int) -> DomainError {
        var refusal = DomainError(
            .resourceExhausted,
            "rate limit: at most \(limitPerMinute) requests per minute per access key",
            reason: ErrorReason.rateLimited.rawValue,
            retryAfterSeconds: retryAfter
        )
        refusal.rateLimitPerMinute = limitPerMinute
        return refusal
    }
}
