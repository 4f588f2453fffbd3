import FluentKit
import Foundation
import Platform
import SQLKit
import Synchronization

/// `RateLimiter` over a sliding window kept in `ai_rate_bucket`, shared by every replica: no
/// 60-second stretch admits more than the limit.
///
/// Admissions are counted per access key in one-second buckets (`RateWindow`; a fixed
/// clock-minute window admitted up to twice the limit across a minute's boundary). The time is
/// the database's clock, so replicas with drifting clocks still count alike.
///
/// Requests that arrive together are decided together: one transaction per batch, in which each
/// key is locked (PostgreSQL: an advisory lock per key, in key order; SQLite: the database's write
/// lock, taken by the transaction's first statement), its window read, and its admissions added
/// to the current bucket.
public struct SQLRateLimiter: RateLimiter {
    public let limitPerMinute: Int
    private let decisions: WriteBatcher<String, Result<Decision, any Error>>

    /// Where the current second comes from: the database (production), or the `now` each caller
    /// passes (tests that need a given time).
    public enum TimeSource: Sendable {
        case database
        case caller
    }

    /// Admitted, or refused with the seconds until the window has room.
    enum Decision: Sendable {
        case admitted(remaining: Int64, reset: Int)
        case refused(retryAfter: Int)
    }

    static let windowSeconds = RateWindow.windowSeconds

    public init(database: ServiceDatabase, limitPerMinute: Int, timeSource: TimeSource = .database) {
        self.limitPerMinute = limitPerMinute
        let limit = Int64(limitPerMinute)
        let times = CallerTimes()
        decisions = WriteBatcher(writesInline: database.writesInline, observeBatch: database.batchObserver(writer: "rate_limiter")) { subjects in
            await Self.decide(subjects, limit: limit, database: database, givenSecond: timeSource == .caller ? times.latest : nil)
        }
        self.times = timeSource == .caller ? times : nil
    }

    private let times: CallerTimes?

    @discardableResult
    public func acquire(subject: String, now: Date) async throws -> RateLimitState {
        times?.record(now)
        switch try await decisions.submit(subject).get() {
        case .admitted(let remaining, let reset):
            return RateLimitState(limit: limitPerMinute, remaining: Int(remaining), resetSeconds: reset)
        case .refused(let retryAfter):
            throw RateWindow.refusal(limitPerMinute: limitPerMinute, retryAfter: retryAfter)
        }
    }

    /// One decision per entry, in order: each key's first requests get the room its window has.
    private static func decide(_ subjects: [String], limit: Int64, database: ServiceDatabase, givenSecond: Int64?) async -> [Result<Decision, any Error>] {
        do {
            let counts = Dictionary(subjects.map { ($0, Int64(1)) }, uniquingKeysWith: +)
            let admitted = try await admit(counts, limit: limit, database: database, givenSecond: givenSecond)
            var remaining = admitted.mapValues(\.admitted)
            return subjects.map { subject in
                guard let outcome = admitted[subject] else { return .success(.refused(retryAfter: 1)) }
                if remaining[subject, default: 0] > 0 {
                    remaining[subject, default: 0] -= 1
                    // Room left after this request: what the window had after the whole batch,
                    // plus the batch's later admissions.
                    let left = outcome.roomAfter + remaining[subject, default: 0]
                    return .success(.admitted(remaining: left, reset: left > 0 ? 0 : outcome.retryAfter))
                }
                return .success(.refused(retryAfter: outcome.retryAfter))
            }
        } catch {
            return subjects.map { _ in .failure(error) }
        }
    }

    private struct Outcome {
        var admitted: Int64
        /// Requests the window still admits after this batch.
        var roomAfter: Int64
        var retryAfter: Int
    }

    private static func admit(_ counts: [String: Int64], limit: Int64, database: ServiceDatabase, givenSecond: Int64?) async throws -> [String: Outcome] {
        if counts.count == 1, let (key, count) = counts.first, count == 1,
           let outcome = try await admitAloneOnSQLite(key, limit: limit, database: database, givenSecond: givenSecond) {
            return [key: outcome]
        }
        let keys = counts.keys.sorted()
        return try await database.writeTransaction { sql in
            let postgres = sql.dialect.name == "postgresql"
            let clock: SQLQueryString = givenSecond.map { "\(bind: $0)" }
                ?? (postgres ? "floor(extract(epoch from clock_timestamp()))::bigint" : "CAST(strftime('%s','now') AS INTEGER)")
            if postgres {
                // Concurrent batches of other replicas wait for each key they share with this one.
                for key in keys {
                    try await sql.raw("SELECT pg_advisory_xact_lock(\(bind: lockKey(key)))").run()
                }
            }
            // A write first: on SQLite it takes the database's write lock before anything is read,
            // so the window read below is the latest (and the batches of replicas take turns).
            // It also drops the buckets that left every window, of every key.
            try await sql.raw("DELETE FROM ai_rate_bucket WHERE second < \(clock) - \(literal: Int(windowSeconds))").run()
            guard let row = try await sql.raw("SELECT \(clock) AS now").first() else {
                throw DomainError(.internal, "the database did not tell the time")
            }
            let now = try row.decode(column: "now", as: Int64.self)
            var outcomes: [String: Outcome] = [:]
            for key in keys {
                outcomes[key] = try await admit(key, count: counts[key] ?? 0, limit: limit, now: now, sql: sql)
            }
            return outcomes
        }
    }

    private static func admit(_ key: String, count: Int64, limit: Int64, now: Int64, sql: any SQLDatabase) async throws -> Outcome {
        let rows = try await sql.raw("""
            SELECT second, hits FROM ai_rate_bucket WHERE subject = \(bind: key) AND second >= \(bind: now - windowSeconds)
            """).all()
        var buckets: [(second: Int64, hits: Int64)] = []
        for row in rows {
            buckets.append((second: try row.decode(column: "second", as: Int64.self), hits: try row.decode(column: "hits", as: Int64.self)))
        }
        let used = buckets.reduce(0) { $0 + $1.hits }
        let admitted = max(0, min(count, limit - used))
        if admitted > 0 {
            try await sql.raw("""
                INSERT INTO ai_rate_bucket (subject, second, hits) VALUES (\(bind: key), \(bind: now), \(bind: admitted)) \
                ON CONFLICT (subject, second) DO UPDATE SET hits = ai_rate_bucket.hits + excluded.hits
                """).run()
            buckets.append((now, admitted))
        }
        return Outcome(admitted: admitted, roomAfter: max(0, limit - used - admitted), retryAfter: retryAfter(buckets, limit: limit, now: now))
    }

    /// One request of one key on SQLite, the usual case below saturation: a single statement, so
    /// one round trip instead of a transaction's six. SQLite takes the write lock when the
    /// statement starts, before it reads the window, so the decision is as atomic as the batch's.
    /// Nil when the window is full: the batch path then works out when it has room.
    private static func admitAloneOnSQLite(_ key: String, limit: Int64, database: ServiceDatabase, givenSecond: Int64?) async throws -> Outcome? {
        try await database.write { sql in try await admitAlone(key, limit: limit, givenSecond: givenSecond, on: sql) }
    }

    private static func admitAlone(_ key: String, limit: Int64, givenSecond: Int64?, on sql: any SQLDatabase) async throws -> Outcome? {
        guard sql.dialect.name == "sqlite" else { return nil }
        let clock: SQLQueryString = givenSecond.map { "\(bind: $0)" } ?? "CAST(strftime('%s','now') AS INTEGER)"
        let window = Int(windowSeconds)
        guard let row = try await sql.raw("""
            INSERT INTO ai_rate_bucket (subject, second, hits) \
            SELECT \(bind: key), w.now, 1 FROM (SELECT \(clock) AS now, (SELECT COALESCE(SUM(hits), 0) FROM ai_rate_bucket \
            WHERE subject = \(bind: key) AND second >= \(clock) - \(literal: window)) AS used) AS w WHERE w.used < \(bind: limit) \
            ON CONFLICT (subject, second) DO UPDATE SET hits = ai_rate_bucket.hits + excluded.hits \
            RETURNING second, (SELECT COALESCE(SUM(b.hits), 0) FROM ai_rate_bucket AS b \
            WHERE b.subject = \(bind: key) AND b.second >= ai_rate_bucket.second - \(literal: window)) AS used_after
            """).first() else { return nil }
        let now = try row.decode(column: "second", as: Int64.self)
        let room = max(0, limit - (try row.decode(column: "used_after", as: Int64.self)))
        if Int.random(in: 0..<64) == 0 {
            // The batch path drops expired buckets every time; alone, now and then is enough.
            try await sql.raw("DELETE FROM ai_rate_bucket WHERE second < \(bind: now - windowSeconds)").run()
        }
        var retry = 1
        if room == 0 {
            let rows = try await sql.raw("""
                SELECT second, hits FROM ai_rate_bucket WHERE subject = \(bind: key) AND second >= \(bind: now - windowSeconds)
                """).all()
            let buckets = try rows.map { (second: try $0.decode(column: "second", as: Int64.self), hits: try $0.decode(column: "hits", as: Int64.self)) }
            retry = retryAfter(buckets, limit: limit, now: now)
        }
        return Outcome(admitted: 1, roomAfter: room, retryAfter: retry)
    }

    static func retryAfter(_ buckets: [(second: Int64, hits: Int64)], limit: Int64, now: Int64) -> Int {
        RateWindow.retryAfter(buckets, limit: limit, now: now)
    }

    /// A stable 64-bit key for the advisory lock of an access key (FNV-1a).
    static func lockKey(_ key: String) -> Int64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in key.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01B3
        }
        return Int64(bitPattern: hash)
    }
}

/// The latest time callers passed, for `TimeSource.caller`.
private final class CallerTimes: Sendable {
    private let latestSecond = Mutex<Int64>(0)

    func record(_ now: Date) {
        latestSecond.withLock { $0 = Int64(now.timeIntervalSince1970.rounded(.down)) }
    }

    var latest: Int64 { latestSecond.withLock { $0 } }
}
