import FluentKit
import Foundation
import Platform
import SQLKit

/// `RateLimiter` with fixed one-minute windows in `ai_rate_window`, shared by every replica: one
/// upsert counts the request and answers the window's count atomically on SQLite and PostgreSQL.
public struct SQLRateLimiter: RateLimiter {
    private let database: ServiceDatabase
    public let limitPerMinute: Int

    public init(database: ServiceDatabase, limitPerMinute: Int) {
        self.database = database
        self.limitPerMinute = limitPerMinute
    }

    public func acquire(subject: String, now: Date) async throws {
        let sql = try database.sql()
        let window = Int64(now.timeIntervalSince1970 / 60) * 60_000
        guard let row = try await sql.raw("""
            INSERT INTO ai_rate_window (subject, window_start, hits) VALUES (\(bind: subject), \(bind: window), 1) \
            ON CONFLICT (subject, window_start) DO UPDATE SET hits = ai_rate_window.hits + 1 RETURNING hits
            """).first() else { return }
        let hits = try row.decode(column: "hits", as: Int64.self)
        if hits == 1 {
            // The first request of a window purges the finished ones, of every subject.
            try await sql.raw("DELETE FROM ai_rate_window WHERE window_start < \(bind: window)").run()
        }
        if hits > Int64(limitPerMinute) {
            let windowEnd = Date(milliseconds: window + 60_000)
            throw DomainError(
                .resourceExhausted,
                "rate limit: at most \(limitPerMinute) requests per minute per access key",
                reason: "RateLimited",
                retryAfterSeconds: max(1, Int(windowEnd.timeIntervalSince(now).rounded(.up)))
            )
        }
    }
}
