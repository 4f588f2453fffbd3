import FluentKit
import Foundation
import Platform
import SQLKit

/// `RateLimiter` with fixed one-minute windows in `ai_rate_window`, shared by every replica: one
/// upsert counts requests and answers the window's count atomically on SQLite and PostgreSQL.
/// Requests that arrive together are counted together: one upsert per access key adds them all,
/// and each request learns its own place in the window from the total.
public struct SQLRateLimiter: RateLimiter {
    public let limitPerMinute: Int
    private let counter: WriteBatcher<Hit, Result<Int64, any Error>>

    /// One request of `subject` in the window starting at `window` (ms since 1970).
    private struct Hit: Hashable, Sendable {
        var subject: String
        var window: Int64
    }

    public init(database: ServiceDatabase, limitPerMinute: Int) {
        self.limitPerMinute = limitPerMinute
        counter = WriteBatcher { hits in await Self.count(hits, in: database) }
    }

    public func acquire(subject: String, now: Date) async throws {
        let window = Int64(now.timeIntervalSince1970 / 60) * 60_000
        let place = try await counter.submit(Hit(subject: subject, window: window)).get()
        if place > Int64(limitPerMinute) {
            let windowEnd = Date(milliseconds: window + 60_000)
            throw DomainError(
                .resourceExhausted,
                "rate limit: at most \(limitPerMinute) requests per minute per access key",
                reason: ErrorReason.rateLimited.rawValue,
                retryAfterSeconds: max(1, Int(windowEnd.timeIntervalSince(now).rounded(.up)))
            )
        }
    }

    /// Each hit's place in its window (1 for the window's first request).
    private static func count(_ hits: [Hit], in database: ServiceDatabase) async -> [Result<Int64, any Error>] {
        let groups = Dictionary(grouping: hits.indices) { hits[$0] }
        var places = [Result<Int64, any Error>](repeating: .success(0), count: hits.count)
        var newestFreshWindow: Int64?
        for (hit, indices) in groups {
            do {
                let sql = try database.sql()
                let added = Int64(indices.count)
                guard let row = try await sql.raw("""
                    INSERT INTO ai_rate_window (subject, window_start, hits) VALUES (\(bind: hit.subject), \(bind: hit.window), \(bind: added)) \
                    ON CONFLICT (subject, window_start) DO UPDATE SET hits = ai_rate_window.hits + excluded.hits RETURNING hits
                    """).first() else { throw DomainError(.internal, "the rate window upsert returned no row") }
                let total = try row.decode(column: "hits", as: Int64.self)
                for (offset, index) in indices.enumerated() {
                    places[index] = .success(total - added + 1 + Int64(offset))
                }
                if total == added { newestFreshWindow = max(newestFreshWindow ?? hit.window, hit.window) }
            } catch {
                for index in indices { places[index] = .failure(error) }
            }
        }
        if let window = newestFreshWindow {
            // The first requests of a window purge the finished ones, of every subject.
            _ = try? await database.sql().raw("DELETE FROM ai_rate_window WHERE window_start < \(bind: window)").run()
        }
        return places
    }
}
