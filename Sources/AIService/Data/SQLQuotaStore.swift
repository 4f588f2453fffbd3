import FluentKit
import Foundation
import Synchronization
import Platform
import SQLKit

/// `QuotaStore` on the `ai_quota` row of each user, shared by every replica.
///
/// Each step is one statement, atomic on SQLite (one writer at a time) and on PostgreSQL (the
/// row lock; under READ COMMITTED an UPDATE re-checks its WHERE clause against the row as the
/// previous writer left it), so no in-process state and no multi-statement transaction is needed:
/// - admission of a user without a budget: one read, nothing reserved.
/// - admission: one conditional UPDATE that adds an estimate to `*_reserved` only while
///   `used + reserved < budget` in every budgeted dimension. The estimate is the larger of the
///   call's own (`CallEstimate`: its prompt, its answer's limit) and `max_call_*`, the largest
///   call settled so far, which settlement never leaves below a positive floor
///   (`minimumCallTokens`, `minimumCallCost`): a dimension whose calls all cost 0 (an unpriced
///   model, tokens of speech calls) still admits concurrent calls, each holding the floor.
///   Before any call of the user has settled (`max_call_*` = 0) the estimate is the whole
///   remaining budget, so that first call runs alone; `last_reserved_*` (set in the same
///   statement from the same old row) tells the caller what it reserved.
/// - a refusal is 402 only when the budget is spent: `used >= budget`. While reservations of calls
///   in flight are what fills it (a first call's whole-budget one, or estimates that may well be
///   above what the calls will spend: a `max_tokens` is a cap), admission waits for them to
///   settle (up to `firstCallWait`) and then answers 429 with Retry-After, never 402.
/// - a row in `ai_quota_reservation` then remembers the reservation with an expiry, so a process
///   that dies mid-call leaks it only until `reservationLifetime` has passed: the next admission
///   of that user releases expired reservations.
/// - settlement: deleting the reservation row claims it (only one of settlement and expiry
///   release wins), then one upsert moves the reservation to `*_used`; calls that finish together
///   settle together, one claim statement and one upsert per user (`SQLInvocationLedger`).
/// The admission UPDATE and the reservation INSERT are one transaction, as are an expired row's
/// deletion and its release. SetQuota with reset_usage also drops every reservation of the user
/// (calls in flight then settle what they used and release nothing).
public struct SQLQuotaStore: QuotaStore {
    private let database: ServiceDatabase
    /// The configuration center may replace it: an admission reads it once when it starts.
    private let policy: LiveSetting<QuotaPolicy>
    private var reservationLifetime: TimeInterval { policy.current.reservationLifetime }
    private var minimumCallTokens: Int64 { Int64(max(1, policy.current.minimumCallTokens)) }
    private var minimumCallCost: Double {
        let cost = policy.current.minimumCallCost
        return cost.isFinite && cost > 0 ? cost : 0.000_001
    }

    /// Users just seen without a budget: their next calls skip the admission read for a moment.
    /// The stores of one process share it (`setQuota` clears a user from it).
    private let unbudgeted: RecentlyUnbudgeted

    public init(database: ServiceDatabase, policy: LiveSetting<QuotaPolicy>) {
        self.init(database: database, policy: policy, unbudgeted: RecentlyUnbudgeted())
    }

    init(database: ServiceDatabase, policy: LiveSetting<QuotaPolicy>, unbudgeted: RecentlyUnbudgeted) {
        self.database = database
        self.policy = policy
        self.unbudgeted = unbudgeted
    }

    init(database: ServiceDatabase, unbudgeted: RecentlyUnbudgeted) {
        self.init(database: database, policy: LiveSetting(QuotaPolicy()), unbudgeted: unbudgeted)
    }

    public init(
        database: ServiceDatabase, reservationLifetime: TimeInterval = 900,
        minimumCallTokens: Int = 1, minimumCallCost: Double = 0.000_001, firstCallWait: Duration = .seconds(10)
    ) {
        self.init(database: database, policy: LiveSetting(QuotaPolicy(
            reservationLifetime: reservationLifetime, minimumCallTokens: minimumCallTokens, minimumCallCost: minimumCallCost, firstCallWait: firstCallWait
        )))
    }

    public func admit(userId: String, estimate: CallEstimate, now: Date) async throws -> QuotaTicket? {
        let policy = self.policy.current
        // Most users have no budget: a read tells, and spares them a write per call; what it told
        // holds for `RecentlyUnbudgeted.holdsFor`. A budget set here applies from the next call; one
        // set on another replica, within that time.
        if unbudgeted.contains(userId) { return nil }
        let budgeted = try await database.reads().raw("""
            SELECT user_id FROM ai_quota WHERE user_id = \(bind: userId) AND (token_budget IS NOT NULL OR cost_budget IS NOT NULL)
            """).first()
        if budgeted == nil {
            unbudgeted.insert(userId)
            return nil
        }
        let deadline = ContinuousClock.now + policy.firstCallWait
        var pause = Duration.milliseconds(10)
        var attemptTime = now
        while true {
            // One transaction: the admission UPDATE and its reservation row (or the release of
            // expired rows and what they held) happen together or not at all, so a failure
            // between them cannot leave an amount reserved that no row will ever give back.
            let now = attemptTime
            let outcome = try await database.writeTransaction { [self] sql -> Attempt in
                if case .admitted(let ticket) = try await reserve(userId: userId, estimate: estimate, now: now, on: sql) { return .admitted(ticket) }
                // Reservations left by calls whose process died may be what holds the budget: they
                // are released here, when they matter, not on every call.
                if try await releaseExpired(userId: userId, now: now, on: sql) { return .again }
                guard let state = try await state(userId: userId, on: sql) else { return .admitted(nil) }
                if state.tokens.isSpent || state.cost.isSpent { throw Self.spent(state.quota) }
                if !state.tokens.isLimited && !state.cost.isLimited { return .admitted(nil) }  // budgets removed meanwhile
                return .wait
            }
            switch outcome {
            case .admitted(let ticket): return ticket
            case .again: continue
            case .wait: break
            }
            // Budget left, but what calls in flight reserved fills it (or the row moved under us): wait for them.
            guard ContinuousClock.now + pause < deadline else { throw Self.busy }
            try await Task.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(200))
            attemptTime = Date()
        }
    }

    /// One admission attempt: decided, worth another try at once, or to wait for a first call.
    private enum Attempt: Sendable {
        case admitted(QuotaTicket?)
        case again
        case wait
    }

    private enum Reservation {
        case refused
        /// nil: admitted with nothing to reserve (no budget).
        case admitted(QuotaTicket?)
    }

    /// The admission UPDATE and, when it reserved something, the reservation row.
    private func reserve(userId: String, estimate: CallEstimate, now: Date, on sql: any SQLDatabase) async throws -> Reservation {
        // Per dimension: nothing without a budget; with a known call size, the larger of it and the
        // call's own estimate; before any call settled, what is left (the first call runs alone).
        // Both SETs use the row as it was before the statement, on SQLite and PostgreSQL alike.
        let tokens = Int64(estimate.tokens), cost = estimate.cost
        let tokenAmount: SQLQueryString = """
            CASE WHEN token_budget IS NULL THEN 0 \
            WHEN max_call_tokens > 0 THEN CASE WHEN max_call_tokens > \(bind: tokens) THEN max_call_tokens ELSE \(bind: tokens) END \
            ELSE token_budget - tokens_used - tokens_reserved END
            """
        let costAmount: SQLQueryString = """
            CASE WHEN cost_budget IS NULL THEN 0 \
            WHEN max_call_cost > 0 THEN CASE WHEN max_call_cost > \(bind: cost) THEN max_call_cost ELSE \(bind: cost) END \
            ELSE cost_budget - cost_used - cost_reserved END
            """
        let rows = try await sql.raw("""
            UPDATE ai_quota SET \
            last_reserved_tokens = \(tokenAmount), \
            last_reserved_cost = \(costAmount), \
            tokens_reserved = tokens_reserved + \(tokenAmount), \
            cost_reserved = cost_reserved + \(costAmount) \
            WHERE user_id = \(bind: userId) \
            AND (token_budget IS NULL OR tokens_used + tokens_reserved < token_budget) \
            AND (cost_budget IS NULL OR cost_used + cost_reserved < cost_budget) \
            RETURNING last_reserved_tokens, last_reserved_cost
            """).all()
        guard let row = rows.first else { return .refused }
        let ticket = QuotaTicket(
            id: SortableID.make(at: now), userId: userId,
            tokens: Int(try row.decode(column: "last_reserved_tokens", as: Int64.self)),
            cost: try row.decode(column: "last_reserved_cost", as: Double.self)
        )
        if ticket.tokens == 0 && ticket.cost == 0 { return .admitted(nil) }
        try await sql.raw("""
            INSERT INTO ai_quota_reservation (id, user_id, tokens, cost, expires_at) VALUES (\(bind: ticket.id), \
            \(bind: userId), \(bind: Int64(ticket.tokens)), \(bind: ticket.cost), \(bind: now.addingTimeInterval(reservationLifetime).milliseconds))
            """).run()
        return .admitted(ticket)
    }

    /// One budgeted dimension of the row, as a refused admission saw it.
    private struct Dimension {
        var budget: Double?
        var used: Double
        var isLimited: Bool { budget != nil }
        /// Spent: what calls in flight hold may still come back.
        var isSpent: Bool {
            guard let budget else { return false }
            return used >= budget
        }
    }

    private func state(userId: String, on sql: any SQLDatabase) async throws -> (quota: Quota, tokens: Dimension, cost: Dimension)? {
        guard let row = try await sql.raw("""
            SELECT token_budget, cost_budget, tokens_used, cost_used, updated_at FROM ai_quota WHERE user_id = \(bind: userId)
            """).first() else { return nil }
        let quota = try Self.quota(row, userId: userId)
        return (quota, Dimension(budget: quota.tokenBudget.map(Double.init), used: Double(quota.tokensUsed)), Dimension(budget: quota.costBudget, used: quota.costUsed))
    }

    /// Settles finished calls inside the caller's transaction (see `SQLInvocationLedger`): one
    /// statement claims their reservations, then one upsert per user books that user's calls.
    func settle(_ settlements: [QuotaSettlement], now: Date, on sql: any SQLDatabase) async throws {
        guard !settlements.isEmpty else { return }
        let ticketIds = settlements.compactMap { $0.ticket?.id }
        var claimed: Set<String> = []
        if !ticketIds.isEmpty {
            // Whoever deletes a reservation row releases it: settlement or expiry, never both.
            let rows = try await sql.raw("DELETE FROM ai_quota_reservation WHERE id IN (\(binds: ticketIds)) RETURNING id").all()
            claimed = Set(try rows.map { try $0.decode(column: "id", as: String.self) })
        }
        var byUser: [String: Booking] = [:]
        for settlement in settlements {
            var booking = byUser[settlement.userId] ?? Booking()
            booking.tokens += Int64(settlement.tokens)
            booking.cost += settlement.cost
            if let ticket = settlement.ticket, claimed.contains(ticket.id) {
                booking.releasedTokens += Int64(ticket.tokens)
                booking.releasedCost += ticket.cost
            }
            // A settled call raises `max_call_*` to its size, and at least to the floors: a call
            // that consumed 0 still tells admission that calls of this user are small, not unknown.
            booking.largestCallTokens = max(booking.largestCallTokens, Int64(settlement.tokens), minimumCallTokens)
            booking.largestCallCost = max(booking.largestCallCost, settlement.cost, minimumCallCost)
            byUser[settlement.userId] = booking
        }
        // Rows are locked in one order by every replica's batches, so two batches never deadlock.
        for (userId, booking) in byUser.sorted(by: { $0.key < $1.key }) {
            try await book(userId: userId, booking, now: now, on: sql)
        }
    }

    public func quota(userId: String) async throws -> Quota {
        let sql = try await database.reads()
        guard let row = try await sql.raw("""
            SELECT user_id, token_budget, cost_budget, tokens_used, cost_used, updated_at FROM ai_quota WHERE user_id = \(bind: userId)
            """).first() else { return .unlimited(userId) }
        return try Self.quota(row, userId: userId)
    }

    /// The budget columns of an `ai_quota` row.
    private static func quota(_ row: any SQLRow, userId: String) throws -> Quota {
        Quota(
            userId: userId,
            tokenBudget: try row.decode(column: "token_budget", as: Int64?.self).map(Int.init),
            costBudget: try row.decode(column: "cost_budget", as: Double?.self),
            tokensUsed: Int(try row.decode(column: "tokens_used", as: Int64.self)),
            costUsed: try row.decode(column: "cost_used", as: Double.self),
            updatedAt: Date(milliseconds: try row.decode(column: "updated_at", as: Int64.self))
        )
    }

    public func setQuota(userId: String, tokenBudget: Int?, costBudget: Double?, resetUsage: Bool, now: Date) async throws -> Quota {
        defer { unbudgeted.remove(userId) }
        // The quota row first, then the reservations: a reservation made meanwhile (it holds the
        // row until it commits) is seen and dropped. Settling takes them the other way round, so
        // a reset and a settlement of the same user can deadlock on PostgreSQL, which ends one
        // of them; this one is then run again (a settlement is, by the ledger).
        var attempt = 0
        while true {
            do {
                try await reset(userId: userId, tokenBudget: tokenBudget, costBudget: costBudget, resetUsage: resetUsage, now: now)
                break
            } catch where DatabaseFailure.isDeadlock(error) && attempt < 3 {
                attempt += 1
            }
        }
        return try await quota(userId: userId)
    }

    private func reset(userId: String, tokenBudget: Int?, costBudget: Double?, resetUsage: Bool, now: Date) async throws {
        let reset: SQLQueryString = resetUsage ? ", tokens_used = 0, cost_used = 0, tokens_reserved = 0, cost_reserved = 0.0" : ""
        try await database.writeTransaction { sql in
            try await sql.raw("""
                INSERT INTO ai_quota (user_id, token_budget, cost_budget, tokens_used, cost_used, tokens_reserved, cost_reserved, \
                max_call_tokens, max_call_cost, last_reserved_tokens, last_reserved_cost, updated_at) \
                VALUES (\(bind: userId), \(bind: tokenBudget.map(Int64.init)), \(bind: costBudget), 0, 0.0, 0, 0.0, 0, 0.0, 0, 0.0, \(bind: now.milliseconds)) \
                ON CONFLICT (user_id) DO UPDATE SET token_budget = excluded.token_budget, cost_budget = excluded.cost_budget, \
                updated_at = excluded.updated_at\(reset)
                """).run()
            if resetUsage { try await sql.raw("DELETE FROM ai_quota_reservation WHERE user_id = \(bind: userId)").run() }
        }
    }

    /// What to add to one user's row: consumption, released reservations, and the largest call
    /// among those booked (0 when none is a settled call).
    private struct Booking {
        var tokens: Int64 = 0
        var cost = 0.0
        var releasedTokens: Int64 = 0
        var releasedCost = 0.0
        var largestCallTokens: Int64 = 0
        var largestCallCost = 0.0
    }

    /// Adds consumption and releases reservations on a user's row, creating it if needed.
    private func book(userId: String, _ booking: Booking, now: Date, on sql: any SQLDatabase) async throws {
        // Adding and subtracting floating-point reservations leaves crumbs; far below any call's
        // floor they mean nothing is reserved.
        let costResidue = minimumCallCost / 1_000
        try await sql.raw("""
            INSERT INTO ai_quota (user_id, token_budget, cost_budget, tokens_used, cost_used, tokens_reserved, cost_reserved, \
            max_call_tokens, max_call_cost, last_reserved_tokens, last_reserved_cost, updated_at) \
            VALUES (\(bind: userId), NULL, NULL, \(bind: booking.tokens), \(bind: booking.cost), 0, 0.0, \(bind: booking.largestCallTokens), \
            \(bind: booking.largestCallCost), 0, 0.0, \(bind: now.milliseconds)) \
            ON CONFLICT (user_id) DO UPDATE SET \
            tokens_used = ai_quota.tokens_used + excluded.tokens_used, \
            cost_used = ai_quota.cost_used + excluded.cost_used, \
            tokens_reserved = CASE WHEN ai_quota.tokens_reserved > \(bind: booking.releasedTokens) \
              THEN ai_quota.tokens_reserved - \(bind: booking.releasedTokens) ELSE 0 END, \
            cost_reserved = CASE WHEN ai_quota.cost_reserved - \(bind: booking.releasedCost) > \(bind: costResidue) \
              THEN ai_quota.cost_reserved - \(bind: booking.releasedCost) ELSE 0.0 END, \
            max_call_tokens = CASE WHEN excluded.max_call_tokens > ai_quota.max_call_tokens THEN excluded.max_call_tokens ELSE ai_quota.max_call_tokens END, \
            max_call_cost = CASE WHEN excluded.max_call_cost > ai_quota.max_call_cost THEN excluded.max_call_cost ELSE ai_quota.max_call_cost END, \
            updated_at = excluded.updated_at
            """).run()
    }

    /// Whether it released anything.
    private func releaseExpired(userId: String, now: Date, on sql: any SQLDatabase) async throws -> Bool {
        let expired = try await sql.raw("""
            DELETE FROM ai_quota_reservation WHERE user_id = \(bind: userId) AND expires_at < \(bind: now.milliseconds) RETURNING tokens, cost
            """).all()
        for row in expired {
            var released = Booking()
            released.releasedTokens = try row.decode(column: "tokens", as: Int64.self)
            released.releasedCost = try row.decode(column: "cost", as: Double.self)
            try await book(userId: userId, released, now: now, on: sql)
        }
        return !expired.isEmpty
    }

    /// Only reservations of calls in flight stand in the way, and they outlasted the wait.
    static let busy = DomainError(
        .resourceExhausted,
        "calls in progress hold the rest of this quota; retry shortly",
        reason: ErrorReason.quotaBusy.rawValue, retryAfterSeconds: 1
    )

    private static func spent(_ quota: Quota) -> DomainError {
        var spent: [String] = []
        if let budget = quota.tokenBudget { spent.append("\(quota.tokensUsed) of \(budget) tokens used") }
        if let budget = quota.costBudget { spent.append("\(quota.costUsed) of \(budget) cost used") }
        return DomainError(
            .resourceExhausted,
            "quota spent: \(spent.joined(separator: ", "))",
            reason: ErrorReason.quotaExceeded.rawValue
        )
    }
}

/// Users whose admission read found no budget, for `holdsFor` after it: with a thousand calls a
/// second from one user, the read on every call (about 0.1 ms of the streamed first byte on the
/// benchmark machine, bench/README.md) becomes one a second.
final class RecentlyUnbudgeted: Sendable {
    static let holdsFor: Duration = .seconds(1)
    /// Beyond this many users, entries past `holdsFor` are dropped as new ones come.
    static let pruneAbove = 10_000

    private struct Seen {
        var users: [String: ContinuousClock.Instant] = [:]
        /// Pruned at most once per `holdsFor`, however many users come.
        var lastPruned: ContinuousClock.Instant?
    }

    private let seen = Mutex(Seen())

    func contains(_ userId: String, now: ContinuousClock.Instant = .now) -> Bool {
        seen.withLock { seen in
            guard let at = seen.users[userId] else { return false }
            return now - at < Self.holdsFor
        }
    }

    func insert(_ userId: String, now: ContinuousClock.Instant = .now) {
        seen.withLock { seen in
            if seen.users.count >= Self.pruneAbove, seen.lastPruned.map({ now - $0 >= Self.holdsFor }) ?? true {
                seen.users = seen.users.filter { now - $0.value < Self.holdsFor }
                seen.lastPruned = now
            }
            seen.users[userId] = now
        }
    }

    func remove(_ userId: String) {
        _ = seen.withLock { $0.users.removeValue(forKey: userId) }
    }

    var count: Int { seen.withLock { $0.users.count } }
}
