import FluentKit
import Foundation
import Platform
import SQLKit

/// `UsageRepository` in the `usage_record` table.
public struct SQLUsageRepository: UsageRepository {
    private let database: ServiceDatabase

    public init(database: ServiceDatabase) {
        self.database = database
    }

    /// Inserts the records with one statement per `insertChunk` rows (inside the caller's
    /// transaction: see `SQLInvocationLedger`).
    static func insert(_ records: [UsageRecord], on sql: any SQLDatabase) async throws {
        var start = records.startIndex
        while start < records.endIndex {
            let end = min(start + insertChunk, records.endIndex)
            let rows: [SQLQueryString] = records[start..<end].map { record in
                let used = record.consumption
                return """
                    (\(bind: record.id), \(bind: record.userId), \(bind: record.accessKey), \(bind: record.chatModelId), \
                    \(bind: record.provider), \(bind: record.model), \(bind: record.kind.rawValue), \(bind: Int64(used.promptTokens)), \
                    \(bind: Int64(used.completionTokens)), \(bind: Int64(used.totalTokens)), \(bind: used.audioSeconds), \
                    \(bind: Int64(used.characters)), \(bind: record.cost), \(bind: record.requestId), \(bind: Int64(record.latencyMs)), \
                    \(bind: record.status), \(bind: record.error), \(bind: record.createdAt.milliseconds), \(bind: record.apiKeyId))
                    """
            }
            try await sql.raw("""
                INSERT INTO usage_record (id, user_id, access_key, chat_model_id, provider, model, kind, prompt_tokens, \
                completion_tokens, total_tokens, audio_seconds, characters, cost, request_id, latency_ms, status, error, created_at, api_key_id) \
                VALUES \(rows.joined(separator: ", "))
                """).run()
            start = end
        }
    }

    /// 19 parameters a row: 100 rows stay far below SQLite's limit of 32,766 parameters.
    private static let insertChunk = 100

    // Sums are cast so both databases answer plain integers and doubles (PostgreSQL's SUM of a
    // BIGINT is NUMERIC; an empty SUM is NULL everywhere).
    private static let sums: SQLQueryString = """
        CAST(COUNT(*) AS BIGINT) AS requests, \
        CAST(COALESCE(SUM(CASE WHEN status = 200 THEN 0 ELSE 1 END), 0) AS BIGINT) AS failures, \
        CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt_tokens, \
        CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion_tokens, \
        CAST(COALESCE(SUM(total_tokens), 0) AS BIGINT) AS total_tokens, \
        CAST(COALESCE(SUM(audio_seconds), 0) AS DOUBLE PRECISION) AS audio_seconds, \
        CAST(COALESCE(SUM(characters), 0) AS BIGINT) AS characters, \
        CAST(COALESCE(SUM(cost), 0) AS DOUBLE PRECISION) AS cost
        """

    private static func whereClause(_ filter: UsageFilter) -> SQLQueryString {
        var conditions: [SQLQueryString] = ["1 = 1"]
        if let userId = filter.userId { conditions.append("user_id = \(bind: userId)") }
        if let apiKeyId = filter.apiKeyId { conditions.append("api_key_id = \(bind: apiKeyId)") }
        if let from = filter.from { conditions.append("created_at >= \(bind: from.milliseconds)") }
        if let to = filter.to { conditions.append("created_at < \(bind: to.milliseconds)") }
        return "WHERE \(conditions.joined(separator: " AND "))"
    }

    public func totals(_ filter: UsageFilter) async throws -> UsageTotals {
        let sql = try database.scans()
        guard let row = try await sql.raw("SELECT \(Self.sums) FROM usage_record \(Self.whereClause(filter))").first() else {
            return UsageTotals(key: "")
        }
        return try Self.totals(row, key: "")
    }

    public func totalsByDay(_ filter: UsageFilter) async throws -> [UsageTotals] {
        let sql = try database.scans()
        let rows = try await sql.raw("""
            SELECT CAST(created_at / 86400000 AS BIGINT) AS day, \(Self.sums) FROM usage_record \(Self.whereClause(filter)) \
            GROUP BY CAST(created_at / 86400000 AS BIGINT) ORDER BY day
            """).all()
        return try rows.map { row in
            let day = Date(timeIntervalSince1970: Double(try row.decode(column: "day", as: Int64.self)) * 86_400)
            return try Self.totals(row, key: Self.dayFormat.format(day))
        }
    }

    public func totalsByModel(_ filter: UsageFilter) async throws -> [UsageTotals] {
        let sql = try database.scans()
        let rows = try await sql.raw("""
            SELECT provider, model, \(Self.sums) FROM usage_record \(Self.whereClause(filter)) \
            GROUP BY provider, model ORDER BY provider, model
            """).all()
        return try rows.map { row in
            try Self.totals(row, key: "\(try row.decode(column: "provider", as: String.self))/\(try row.decode(column: "model", as: String.self))")
        }
    }

    public func records(_ filter: UsageFilter, offset: Int, limit: Int) async throws -> (records: [UsageRecord], total: Int) {
        let sql = try database.scans()
        let count = try await sql.raw("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM usage_record \(Self.whereClause(filter))").first()
        let rows = try await sql.raw("""
            SELECT * FROM usage_record \(Self.whereClause(filter)) \
            ORDER BY created_at DESC, id DESC LIMIT \(bind: limit) OFFSET \(bind: offset)
            """).all()
        return (try rows.map(Self.record), Int(try count?.decode(column: "n", as: Int64.self) ?? 0))
    }

    private static let dayFormat = Date.ISO8601FormatStyle(timeZone: .gmt).year().month().day()

    private static func totals(_ row: any SQLRow, key: String) throws -> UsageTotals {
        var totals = UsageTotals(key: key)
        totals.requests = Int(try row.decode(column: "requests", as: Int64.self))
        totals.failures = Int(try row.decode(column: "failures", as: Int64.self))
        totals.promptTokens = Int(try row.decode(column: "prompt_tokens", as: Int64.self))
        totals.completionTokens = Int(try row.decode(column: "completion_tokens", as: Int64.self))
        totals.totalTokens = Int(try row.decode(column: "total_tokens", as: Int64.self))
        totals.audioSeconds = try row.decode(column: "audio_seconds", as: Double.self)
        totals.characters = Int(try row.decode(column: "characters", as: Int64.self))
        totals.cost = try row.decode(column: "cost", as: Double.self)
        return totals
    }

    private static func record(_ row: any SQLRow) throws -> UsageRecord {
        UsageRecord(
            id: try row.decode(column: "id", as: String.self),
            userId: try row.decode(column: "user_id", as: String.self),
            accessKey: try row.decode(column: "access_key", as: String.self),
            apiKeyId: try row.decode(column: "api_key_id", as: String.self),
            chatModelId: try row.decode(column: "chat_model_id", as: String.self),
            provider: try row.decode(column: "provider", as: String.self),
            model: try row.decode(column: "model", as: String.self),
            kind: InvocationKind(rawValue: try row.decode(column: "kind", as: String.self)) ?? .chat,
            consumption: Consumption(
                promptTokens: Int(try row.decode(column: "prompt_tokens", as: Int64.self)),
                completionTokens: Int(try row.decode(column: "completion_tokens", as: Int64.self)),
                totalTokens: Int(try row.decode(column: "total_tokens", as: Int64.self)),
                audioSeconds: try row.decode(column: "audio_seconds", as: Double.self),
                characters: Int(try row.decode(column: "characters", as: Int64.self))
            ),
            cost: try row.decode(column: "cost", as: Double.self),
            requestId: try row.decode(column: "request_id", as: String.self),
            latencyMs: Int(try row.decode(column: "latency_ms", as: Int64.self)),
            status: try row.decode(column: "status", as: Int.self),
            error: try row.decode(column: "error", as: String.self),
            createdAt: Date(milliseconds: try row.decode(column: "created_at", as: Int64.self))
        )
    }
}
