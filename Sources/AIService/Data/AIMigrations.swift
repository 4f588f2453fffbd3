import FluentKit
import Platform
import SQLKit

/// The AI database's schema, in order. Never edit a shipped migration: add a new one.
public enum AIMigrations {
    public static var all: [any Migration] { [CreateAISchema(), SlidingRateWindow(), UsageByApiKey()] }
}

/// Plain SQL that SQLite and PostgreSQL both accept. Timestamps are milliseconds since the epoch
/// (BIGINT), so ranges and UTC days are integer arithmetic on either database.
struct CreateAISchema: AsyncMigration {
    var name: String { "2026-11-20-create-ai-schema" }

    static let statements: [String] = [
        """
        CREATE TABLE chat_model (
            id TEXT PRIMARY KEY, user_id TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL,
            name TEXT NOT NULL, struct TEXT NOT NULL, question_tpl TEXT NOT NULL, status INTEGER NOT NULL,
            created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, deleted_at BIGINT)
        """,
        // A name is unique among one user's live models; a deleted model frees its name.
        "CREATE UNIQUE INDEX chat_model_user_name ON chat_model (user_id, name) WHERE deleted_at IS NULL",
        "CREATE INDEX chat_model_user_created ON chat_model (user_id, created_at)",
        """
        CREATE TABLE usage_record (
            id TEXT PRIMARY KEY, user_id TEXT NOT NULL, access_key TEXT NOT NULL, chat_model_id TEXT NOT NULL,
            provider TEXT NOT NULL, model TEXT NOT NULL, kind TEXT NOT NULL,
            prompt_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL, total_tokens BIGINT NOT NULL,
            audio_seconds DOUBLE PRECISION NOT NULL, characters BIGINT NOT NULL, cost DOUBLE PRECISION NOT NULL,
            request_id TEXT NOT NULL, latency_ms BIGINT NOT NULL, status INTEGER NOT NULL, error TEXT NOT NULL,
            created_at BIGINT NOT NULL)
        """,
        "CREATE INDEX usage_record_user_created ON usage_record (user_id, created_at)",
        "CREATE INDEX usage_record_created ON usage_record (created_at)",
        """
        CREATE TABLE ai_quota (
            user_id TEXT PRIMARY KEY, token_budget BIGINT, cost_budget DOUBLE PRECISION,
            tokens_used BIGINT NOT NULL, cost_used DOUBLE PRECISION NOT NULL,
            tokens_reserved BIGINT NOT NULL, cost_reserved DOUBLE PRECISION NOT NULL,
            max_call_tokens BIGINT NOT NULL, max_call_cost DOUBLE PRECISION NOT NULL,
            last_reserved_tokens BIGINT NOT NULL, last_reserved_cost DOUBLE PRECISION NOT NULL,
            updated_at BIGINT NOT NULL)
        """,
        """
        CREATE TABLE ai_quota_reservation (
            id TEXT PRIMARY KEY, user_id TEXT NOT NULL, tokens BIGINT NOT NULL, cost DOUBLE PRECISION NOT NULL,
            expires_at BIGINT NOT NULL)
        """,
        "CREATE INDEX ai_quota_reservation_user_expiry ON ai_quota_reservation (user_id, expires_at)",
        """
        CREATE TABLE ai_rate_window (
            subject TEXT NOT NULL, window_start BIGINT NOT NULL, hits BIGINT NOT NULL,
            PRIMARY KEY (subject, window_start))
        """,
        "CREATE INDEX ai_rate_window_start ON ai_rate_window (window_start)",
    ]

    func prepare(on database: any Database) async throws {
        let sql = try database.sql()
        for statement in Self.statements {
            try await sql.raw(SQLQueryString(statement)).run()
        }
    }

    func revert(on database: any Database) async throws {
        let sql = try database.sql()
        for table in ["ai_rate_window", "ai_quota_reservation", "ai_quota", "usage_record", "chat_model"] {
            try await sql.raw("DROP TABLE IF EXISTS \(ident: table)").run()
        }
    }
}

/// The rate limit counts one-second buckets of a sliding window instead of fixed minutes.
struct SlidingRateWindow: AsyncMigration {
    var name: String { "2026-12-02-sliding-rate-window" }

    func prepare(on database: any Database) async throws {
        let sql = try database.sql()
        try await sql.raw("""
            CREATE TABLE ai_rate_bucket (
                subject TEXT NOT NULL, second BIGINT NOT NULL, hits BIGINT NOT NULL, PRIMARY KEY (subject, second))
            """).run()
        try await sql.raw("CREATE INDEX ai_rate_bucket_second ON ai_rate_bucket (second)").run()
        try await sql.raw("DROP TABLE ai_rate_window").run()
    }

    func revert(on database: any Database) async throws {
        let sql = try database.sql()
        try await sql.raw("DROP TABLE IF EXISTS ai_rate_bucket").run()
        try await sql.raw("""
            CREATE TABLE ai_rate_window (
                subject TEXT NOT NULL, window_start BIGINT NOT NULL, hits BIGINT NOT NULL,
                PRIMARY KEY (subject, window_start))
            """).run()
    }
}

/// Usage records name the API key of OpenAI-compatible calls.
struct UsageByApiKey: AsyncMigration {
    var name: String { "2026-12-02-usage-by-api-key" }

    func prepare(on database: any Database) async throws {
        let sql = try database.sql()
        try await sql.raw("ALTER TABLE usage_record ADD COLUMN api_key_id TEXT NOT NULL DEFAULT ''").run()
        try await sql.raw("CREATE INDEX usage_record_api_key ON usage_record (api_key_id, created_at)").run()
    }

    func revert(on database: any Database) async throws {
        let sql = try database.sql()
        try await sql.raw("DROP INDEX usage_record_api_key").run()
        try await sql.raw("ALTER TABLE usage_record DROP COLUMN api_key_id").run()
    }
}

extension Database {
    /// This database as SQLKit sees it; both supported drivers speak SQL.
    func sql() throws -> any SQLDatabase {
        guard let sql = self as? any SQLDatabase else { throw DomainError(.internal, "the AI database does not speak SQL") }
        return sql
    }
}

