import FluentKit
import Platform
import SQLKit

/// The user database's schema, in order. Never edit a shipped migration: add a new one.
public enum UserMigrations {
    public static var all: [any Migration] {
        [CreateUsers(), CreateRevocations(), CreateSignatureNonces(), CreateApiKeys(), AddSecurityStamps(), CountTableChanges(table: "users")]
    }
}

struct CreateUsers: AsyncMigration {
    var name: String { "2026-11-01-create-users" }

    func prepare(on database: any Database) async throws {
        try await database.schema("users")
            .field("id", .string, .identifier(auto: false))
            .field("username", .string, .required)
            .field("avatar", .string, .required)
            .field("password_hash", .string, .required)
            .field("status", .int, .required)
            .field("role", .int, .required)
            .field("access_key", .string, .required)
            .field("secret_key", .string, .required)
            .field("created_at", .datetime, .required)
            .field("updated_at", .datetime, .required)
            .field("deleted_at", .datetime)
            // Deleted users keep their names: a former account's name is never handed to someone else.
            .unique(on: "username")
            .unique(on: "access_key")
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema("users").delete()
    }
}

struct CreateRevocations: AsyncMigration {
    var name: String { "2026-11-01-create-revocations" }

    func prepare(on database: any Database) async throws {
        try await database.schema("revocations")
            .field("id", .string, .identifier(auto: false))
            .field("kind", .int, .required)
            .field("subject", .string, .required)
            .field("not_before", .datetime, .required)
            .field("expires_at", .datetime, .required)
            .field("created_at", .datetime, .required)
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema("revocations").delete()
    }
}

/// Nonces of AK/SK-signed requests, kept until their signature expires so that a replayed
/// request is refused by every replica.
struct CreateSignatureNonces: AsyncMigration {
    var name: String { "2026-11-24-create-signature-nonces" }

    func prepare(on database: any Database) async throws {
        try await database.schema("signature_nonces")
            .field("access_key", .string, .required)
            .field("nonce", .string, .required)
            .field("expires_at", .datetime, .required)
            .field("created_at", .datetime, .required)
            .unique(on: "access_key", "nonce")
            .create()
        // Expired nonces are purged by expiry time.
        if let sql = database as? any SQLDatabase {
            try await sql.create(index: "signature_nonces_expires_at").on("signature_nonces").column("expires_at").run()
        }
    }

    func revert(on database: any Database) async throws {
        try await database.schema("signature_nonces").delete()
    }
}

/// API keys for the OpenAI-compatible API: the SHA-256 of each key, never the key.
struct CreateApiKeys: AsyncMigration {
    var name: String { "2026-12-02-create-api-keys" }

    func prepare(on database: any Database) async throws {
        guard let sql = database as? any SQLDatabase else { return }
        try await sql.raw("""
            CREATE TABLE api_keys (
                id TEXT PRIMARY KEY, user_id TEXT NOT NULL, name TEXT NOT NULL, prefix TEXT NOT NULL,
                key_hash TEXT NOT NULL UNIQUE, models TEXT NOT NULL, created_at BIGINT NOT NULL,
                last_used_at BIGINT, expires_at BIGINT, revoked_at BIGINT)
            """).run()
        try await sql.raw("CREATE INDEX api_keys_user ON api_keys (user_id, created_at)").run()
    }

    func revert(on database: any Database) async throws {
        try await database.schema("api_keys").delete()
    }
}

/// Security stamps: every change that ends a user's sessions raises the user's stamp, and its
/// revocation records the new one, so a token from a login that read the row before the change
/// is refused whatever the clocks say. Gateways page through revocations by time and id.
struct AddSecurityStamps: AsyncMigration {
    var name: String { "2026-12-06-add-security-stamps" }

    func prepare(on database: any Database) async throws {
        try await database.schema("users").field("security_stamp", .int64, .required, .sql(.default(0))).update()
        try await database.schema("revocations").field("security_stamp", .int64, .required, .sql(.default(0))).update()
        guard let sql = database as? any SQLDatabase else { return }
        try await sql.create(index: "revocations_by_created_at").on("revocations").column("created_at").run()
    }

    func revert(on database: any Database) async throws {
        if let sql = database as? any SQLDatabase { try await sql.drop(index: "revocations_by_created_at").run() }
        try await database.schema("revocations").deleteField("security_stamp").update()
        try await database.schema("users").deleteField("security_stamp").update()
    }
}
