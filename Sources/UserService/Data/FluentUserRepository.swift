import FluentKit
import SQLKit
import Foundation
import Platform

/// `UserRepository` on FluentKit, for SQLite and PostgreSQL alike.
public struct FluentUserRepository: UserRepository {
    private let database: ServiceDatabase
    /// Nonces of concurrent signed requests are recorded together, one transaction for many.
    private let nonces: WriteBatcher<NonceEntry, Result<Bool, any Error>>
    /// Users by id and by access key, as every authenticated call reads them (`ServiceDatabase.read`).
    private let usersById: RowCache<StoredUser>
    private let usersByAccessKey: RowCache<StoredUser>

    public init(database: ServiceDatabase) {
        self.database = database
        usersById = database.rowCache(named: "users_by_id", table: "users")
        usersByAccessKey = database.rowCache(named: "users_by_access_key", table: "users")
        nonces = WriteBatcher(writesInline: database.writesInline, observeBatch: database.batchObserver(writer: "nonces")) { entries in
            await Self.record(entries, on: database)
        }
    }

    private var db: any Database { database.database() }

    public func insert(_ user: StoredUser) async throws {
        do {
            try await UserRecord(user).create(on: db)
        } catch let error as any DatabaseError where error.isConstraintFailure {
            throw DomainError(.alreadyExists, "username \(user.user.username.quotedForMessage) is already taken")
        }
    }

    public func update(id: String, _ change: @escaping @Sendable (StoredUser) throws -> UserUpdate) async throws -> StoredUser? {
        do {
            return try await db.transaction { db in
                guard let sql = db as? any SQLDatabase else { throw DatabaseConfigurationError("the user database does not speak SQL") }
                // A write first: it takes the row's lock (PostgreSQL) or the database's write lock
                // (SQLite) before anything is read, so a concurrent change of this user waits for
                // this one to commit, and SQLite never has to turn a read lock into a write lock.
                try await sql.raw("UPDATE users SET updated_at = updated_at WHERE id = \(bind: id) AND deleted_at IS NULL").run()
                guard let before = try await UserRecord.query(on: db).filter(\.$id == id).first()?.stored else { return nil }
                let update = try change(before)
                let fields = update.fields
                // One UPDATE of the named columns only: concurrent changes to other fields survive.
                let query = UserRecord.query(on: db).filter(\.$id == id).set(\.$updatedAt, to: fields.updatedAt)
                if let avatar = fields.avatar { query.set(\.$avatar, to: avatar) }
                if let hash = fields.passwordHash { query.set(\.$passwordHash, to: hash) }
                if let status = fields.status { query.set(\.$status, to: status.rawValue) }
                if let role = fields.role { query.set(\.$role, to: role.rawValue) }
                if let accessKey = fields.accessKey { query.set(\.$accessKey, to: accessKey) }
                if let sealed = fields.sealedSecretKey { query.set(\.$sealedSecretKey, to: sealed) }
                try await query.update()
                if let revocation = update.revocation { try await Self.insert(revocation, raisingStampOf: id, on: db) }
                return before
            }
        } catch let error as any DatabaseError where error.isConstraintFailure {
            throw DomainError(.alreadyExists, "this access key is already in use")
        }
    }

    // The lookups below serve every authenticated request, so they skip Fluent's model layer
    // (which reflects over the model on each query) and read the row with plain SQL.

    public func find(id: String) async throws -> StoredUser? {
        try await database.read(usersById, key: id) { try await findUndeleted(where: "id", equals: id) }
    }

    public func find(username: String) async throws -> StoredUser? {
        try await findUndeleted(where: "username", equals: username)
    }

    public func find(accessKey: String) async throws -> StoredUser? {
        try await database.read(usersByAccessKey, key: accessKey) { try await findUndeleted(where: "access_key", equals: accessKey) }
    }

    private func findUndeleted(where column: String, equals value: String) async throws -> StoredUser? {
        let sql = try await database.reads()
        let query: SQLQueryString = """
            SELECT id, username, avatar, password_hash, status, role, access_key, secret_key, created_at, updated_at, security_stamp \
            FROM users WHERE \(ident: column) = \(bind: value) AND deleted_at IS NULL LIMIT 1
            """
        guard let row = try await sql.raw(query).first() else { return nil }
        return StoredUser(
            user: User(
                id: try row.decode(column: "id", as: String.self),
                username: try row.decode(column: "username", as: String.self),
                avatar: try row.decode(column: "avatar", as: String.self),
                status: UserStatus(rawValue: try row.decode(column: "status", as: Int.self)) ?? .disabled,
                role: UserRole(rawValue: try row.decode(column: "role", as: Int.self)) ?? .user,
                accessKey: try row.decode(column: "access_key", as: String.self),
                createdAt: try row.decode(column: "created_at", as: Date.self),
                updatedAt: try row.decode(column: "updated_at", as: Date.self),
                securityStamp: try row.decode(column: "security_stamp", as: Int64.self)
            ),
            passwordHash: try row.decode(column: "password_hash", as: String.self),
            sealedSecretKey: try row.decode(column: "secret_key", as: String.self)
        )
    }

    public func findIncludingDeleted(username: String) async throws -> (user: StoredUser, isDeleted: Bool)? {
        guard let record = try await UserRecord.query(on: db).withDeleted().filter(\.$username == username).first() else { return nil }
        return (record.stored, record.deletedAt != nil)
    }

    public func usernameTaken(_ username: String) async throws -> Bool {
        try await UserRecord.query(on: db).withDeleted().filter(\.$username == username).count() > 0
    }

    public func softDelete(id: String, at date: Date, revoking revocation: Revocation) async throws -> Bool {
        try await db.transaction { db in
            guard try await UserRecord.query(on: db).filter(\.$id == id).count() == 1 else { return false }
            try await UserRecord.query(on: db).filter(\.$id == id).set(\.$deletedAt, to: date).update()
            try await Self.insert(revocation, raisingStampOf: id, on: db)
            return true
        }
    }

    public func list(offset: Int, limit: Int) async throws -> (users: [StoredUser], total: Int) {
        let db = self.db
        async let total = UserRecord.query(on: db).count()
        let records = try await UserRecord.query(on: db).sort(\.$id, .descending).offset(offset).limit(limit).all()
        return (records.map(\.stored), try await total)
    }

    public func all() async throws -> [StoredUser] {
        try await UserRecord.query(on: db).sort(\.$id, .descending).all().map(\.stored)
    }

    public func count() async throws -> Int {
        try await UserRecord.query(on: db).count()
    }

    public func insert(_ revocation: Revocation) async throws {
        guard revocation.kind == .user else { return try await Self.insert(revocation, on: db) }
        try await db.transaction { db in
            // A subject that names no user (any more) is recorded as it is.
            guard try await UserRecord.query(on: db).withDeleted().filter(\.$id == revocation.subject).count() == 1 else {
                return try await Self.insert(revocation, on: db)
            }
            try await Self.insert(revocation, raisingStampOf: revocation.subject, on: db)
        }
    }

    private static func insert(_ revocation: Revocation, on db: any Database) async throws {
        try await RevocationRecord(id: SortableID.make(at: revocation.createdAt), revocation).create(on: db)
    }

    /// Records `revocation`; one of all the user's tokens first raises the user's security stamp
    /// and records the new one. In the caller's transaction, whose UPDATE of the row holds it.
    private static func insert(_ revocation: Revocation, raisingStampOf id: String, on db: any Database) async throws {
        var revocation = revocation
        if revocation.kind == .user {
            guard let sql = db as? any SQLDatabase else { throw DatabaseConfigurationError("the user database does not speak SQL") }
            try await sql.raw("UPDATE users SET security_stamp = security_stamp + 1 WHERE id = \(bind: id)").run()
            guard let row = try await sql.raw("SELECT security_stamp FROM users WHERE id = \(bind: id)").first() else {
                throw DomainError.notFound("no user with id \(id.quotedForMessage)")
            }
            revocation.securityStamp = try row.decode(column: "security_stamp", as: Int64.self)
        }
        try await insert(revocation, on: db)
    }

    public func revocations(since: Date, after: String, limit: Int?, now: Date) async throws -> [Revocation] {
        let query = RevocationRecord.query(on: db)
            .filter(\.$createdAt >= since)
            .filter(\.$expiresAt > now)
        if !after.isEmpty { query.filter(\.$id > after) }
        if let limit { query.limit(limit) }
        return try await query.sort(\.$id).all().map(\.revocation)
    }

    public func deleteRevocations(expiredBefore date: Date) async throws {
        try await RevocationRecord.query(on: db).filter(\.$expiresAt < date).delete()
    }

    // MARK: - Signature nonces

    // The unique key on (access_key, nonce) makes the INSERT the atomic test-and-set that every
    // replica shares; a conflict means the pair was seen, unless the row seen has expired. Every
    // signed request with a nonce records one: on SQLite on the connection that runs on the
    // caller's thread (`ServiceDatabase.write`), not through Fluent's pool, and the nonces of
    // requests that arrive together in one transaction.
    public func recordNonce(accessKey: String, nonce: String, expiresAt: Date, now: Date) async throws -> Bool {
        try await nonces.submit(NonceEntry(accessKey: accessKey, nonce: nonce, expiresAt: expiresAt, now: now)).get()
    }

    struct NonceEntry: Sendable {
        var accessKey: String
        var nonce: String
        var expiresAt: Date
        var now: Date
    }

    /// Each entry's outcome (recorded, or already seen), in order; a failed batch is tried entry
    /// by entry (unless the database is unavailable), so one bad entry cannot keep the others out.
    private static func record(_ entries: [NonceEntry], on database: ServiceDatabase) async -> [Result<Bool, any Error>] {
        do {
            return try await database.writeTransaction { sql in
                var outcomes: [Result<Bool, any Error>] = []
                for entry in entries { outcomes.append(.success(try await record(entry, on: sql))) }
                return outcomes
            }
        } catch {
            // A database that cannot serve fails every entry alike.
            guard entries.count > 1, !DatabaseFailure.isUnavailable(error) else { return entries.map { _ in .failure(error) } }
            var outcomes: [Result<Bool, any Error>] = []
            for entry in entries {
                do {
                    outcomes.append(.success(try await database.writeTransaction { sql in try await record(entry, on: sql) }))
                } catch {
                    outcomes.append(.failure(error))
                }
            }
            return outcomes
        }
    }

    /// One nonce: true if recorded, false if the pair is taken and has not expired.
    private static func record(_ entry: NonceEntry, on sql: any SQLDatabase) async throws -> Bool {
        let insert: SQLQueryString = """
            INSERT INTO signature_nonces (access_key, nonce, expires_at, created_at) \
            VALUES (\(bind: entry.accessKey), \(bind: entry.nonce), \(bind: entry.expiresAt), \(bind: entry.now)) \
            ON CONFLICT (access_key, nonce) DO NOTHING RETURNING access_key
            """
        if try await sql.raw(insert).first() != nil { return true }
        let expired: SQLQueryString = """
            DELETE FROM signature_nonces \
            WHERE access_key = \(bind: entry.accessKey) AND nonce = \(bind: entry.nonce) AND expires_at < \(bind: entry.now)
            """
        try await sql.raw(expired).run()
        return try await sql.raw(insert).first() != nil
    }

    public func deleteNonces(expiredBefore date: Date) async throws {
        try await sqlDatabase().raw("DELETE FROM signature_nonces WHERE expires_at < \(bind: date)").run()
    }

    private func sqlDatabase() throws -> any SQLDatabase {
        guard let sql = db as? any SQLDatabase else {
            throw DomainError(.internal, "the user database does not speak SQL")
        }
        return sql
    }
}
