import FluentKit
import Foundation
import Platform
import SQLKit

/// `ApiKeyRepository` on the `api_keys` table (times in milliseconds since the epoch; models as
/// a JSON array).
public struct SQLApiKeyRepository: ApiKeyRepository {
    private let database: ServiceDatabase

    public init(database: ServiceDatabase) {
        self.database = database
    }

    private static let columns = "id, user_id, name, prefix, models, created_at, last_used_at, expires_at"

    public func insert(_ key: ApiKey, hash: String) async throws {
        let models = String(decoding: try JSONEncoder().encode(key.models), as: UTF8.self)
        try await sql().raw("""
            INSERT INTO api_keys (id, user_id, name, prefix, key_hash, models, created_at, expires_at) VALUES \
            (\(bind: key.id), \(bind: key.userId), \(bind: key.name), \(bind: key.prefix), \(bind: hash), \(bind: models), \
            \(bind: Self.milliseconds(key.createdAt)), \(bind: key.expiresAt.map(Self.milliseconds)))
            """).run()
    }

    public func list(userId: String) async throws -> [ApiKey] {
        try await database.reads().raw("""
            SELECT \(unsafeRaw: Self.columns) FROM api_keys WHERE user_id = \(bind: userId) AND revoked_at IS NULL ORDER BY created_at DESC, id DESC
            """).all().map(Self.key)
    }

    public func find(hash: String) async throws -> ApiKey? {
        try await database.reads().raw("""
            SELECT \(unsafeRaw: Self.columns) FROM api_keys WHERE key_hash = \(bind: hash) AND revoked_at IS NULL
            """).first().map(Self.key)
    }

    public func find(id: String) async throws -> ApiKey? {
        try await database.reads().raw("""
            SELECT \(unsafeRaw: Self.columns) FROM api_keys WHERE id = \(bind: id) AND revoked_at IS NULL
            """).first().map(Self.key)
    }

    public func revoke(id: String, at date: Date, recording revocation: Revocation) async throws -> Bool {
        try await database.database().transaction { db in
            guard let sql = db as? any SQLDatabase else { throw DomainError(.internal, "the user database does not speak SQL") }
            let revoked = try await sql.raw("""
                UPDATE api_keys SET revoked_at = \(bind: Self.milliseconds(date)) WHERE id = \(bind: id) AND revoked_at IS NULL RETURNING id
                """).all()
            guard !revoked.isEmpty else { return false }
            try await RevocationRecord(id: SortableID.make(at: revocation.createdAt), revocation).create(on: db)
            return true
        }
    }

    public func markUsed(id: String, at date: Date) async throws {
        try await sql().raw("UPDATE api_keys SET last_used_at = \(bind: Self.milliseconds(date)) WHERE id = \(bind: id)").run()
    }

    private func sql() throws -> any SQLDatabase {
        guard let sql = database.database() as? any SQLDatabase else { throw DomainError(.internal, "the user database does not speak SQL") }
        return sql
    }

    static func milliseconds(_ date: Date) -> Int64 { Int64(date.millisecondsSince1970) }

    static func key(_ row: any SQLRow) throws -> ApiKey {
        let models = try row.decode(column: "models", as: String.self)
        return ApiKey(
            id: try row.decode(column: "id", as: String.self),
            userId: try row.decode(column: "user_id", as: String.self),
            name: try row.decode(column: "name", as: String.self),
            prefix: try row.decode(column: "prefix", as: String.self),
            models: (try? JSONDecoder().decode([String].self, from: Data(models.utf8))) ?? [],
            createdAt: Date(millisecondsSince1970: Double(try row.decode(column: "created_at", as: Int64.self))),
            lastUsedAt: try row.decode(column: "last_used_at", as: Int64?.self).map { Date(millisecondsSince1970: Double($0)) },
            expiresAt: try row.decode(column: "expires_at", as: Int64?.self).map { Date(millisecondsSince1970: Double($0)) }
        )
    }
}
