import CoreMetrics
import FluentKit
import SQLKit
import Synchronization

/// Rows of one table that requests read again and again (a user by id, by access key), kept in
/// memory for as long as the table has not changed since they were read. Made by
/// `ServiceDatabase.rowCache` and used through `ServiceDatabase.read(_:key:_:)`.
///
/// Whether the table changed is the database's answer, not a guess: triggers that
/// `CountTableChanges` installs count every row inserted, updated or deleted in the table, by any
/// connection (this process's writer, Fluent's pool, another process on the same file), and each
/// lookup first reads that count on the reader connection; when it has moved, every row kept is let
/// go. Writes to other tables (signature nonces, API keys' last use) leave the rows alone. A
/// lookup reads the count before the row, so a row is never filed under a count older than the
/// table it was read from, and a read that starts after a write has committed never sees a row
/// from before it.
///
/// PostgreSQL keeps nothing here: reading the count would cost the round trip the row does.
public final class RowCache<Value: Sendable>: Sendable {
    private struct State {
        /// The table's change count the rows were read at.
        var version: Int64 = .min
        var rows: [String: Value] = [:]
    }

    private let state = Mutex(State())
    /// The statement that reads the table's change count.
    let versionQuery: String
    /// Rows kept at most; a full cache starts over (the rows of the busiest callers come back
    /// first), which keeps a flood of distinct keys from growing it.
    public let capacity: Int
    private let hits: Counter?
    private let misses: Counter?

    init(name: String, table: String, capacity: Int, metrics: (any MetricsFactory)?) {
        versionQuery = CountTableChanges.countQuery(table)
        self.capacity = max(1, capacity)
        hits = metrics.map { Counter(label: "aisaas_db_cache_lookups_total", dimensions: [("cache", name), ("result", "hit")], factory: $0) }
        misses = metrics.map { Counter(label: "aisaas_db_cache_lookups_total", dimensions: [("cache", name), ("result", "miss")], factory: $0) }
    }

    /// The row kept under `key` if the table is still at `version`. Any other version lets every
    /// row go: a newer one after a write, an older one after the file was restored from a backup
    /// (or a slow lookup that read the count before a write another has seen: rows then go once
    /// too often, never once too few).
    func row(for key: String, at version: Int64) -> Value? {
        let row = state.withLock { state -> Value? in
            guard version == state.version else {
                state.version = version
                state.rows.removeAll(keepingCapacity: true)
                return nil
            }
            return state.rows[key]
        }
        if row == nil { misses?.increment() } else { hits?.increment() }
        return row
    }

    /// Keeps a row read after the table's count was found to be `version`, unless the count has
    /// moved on since (the row may be older than the newer count).
    func keep(_ row: Value, for key: String, readAt version: Int64) {
        state.withLock { state in
            guard state.version == version else { return }
            if state.rows.count >= capacity { state.rows.removeAll(keepingCapacity: true) }
            state.rows[key] = row
        }
    }

    /// Rows kept now.
    public var count: Int { state.withLock { $0.rows.count } }
}

/// The change count of a table, for `RowCache`: a row in `table_changes` and three triggers that
/// raise it with every row inserted, updated or deleted. Triggers are part of the schema, so
/// every connection's writes run them, whichever process makes them. The count is raised to the
/// clock (milliseconds since 1970) when that is higher: a database restored from a backup goes
/// back to the backup's count, and the writes after it must not bring the count back to a value
/// it had before, under which other rows were kept. SQLite only (a migration that does nothing on
/// PostgreSQL); idempotent, so a migration cut short can run again.
public struct CountTableChanges: AsyncMigration {
    public let table: String

    /// `table` is a name from the service's code, letters, digits and underscores.
    public init(table: String) {
        precondition(table.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }, "not a plain table name: \(table)")
        self.table = table
    }

    public var name: String { "count-table-changes-\(table)" }

    static func countQuery(_ table: String) -> String {
        "SELECT changes FROM table_changes WHERE name = '\(table)'"
    }

    public func prepare(on database: any Database) async throws {
        guard let sql = database as? any SQLDatabase, sql.dialect.name == "sqlite" else { return }
        try await sql.raw("CREATE TABLE IF NOT EXISTS table_changes (name TEXT PRIMARY KEY, changes INTEGER NOT NULL)").run()
        try await sql.raw("INSERT OR IGNORE INTO table_changes (name, changes) VALUES ('\(unsafeRaw: table)', 0)").run()
        for event in ["INSERT", "UPDATE", "DELETE"] {
            try await sql.raw("""
                CREATE TRIGGER IF NOT EXISTS \(unsafeRaw: table)_changes_\(unsafeRaw: event.lowercased()) AFTER \(unsafeRaw: event) ON \(unsafeRaw: table) \
                BEGIN UPDATE table_changes \
                SET changes = max(changes + 1, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)) \
                WHERE name = '\(unsafeRaw: table)'; END
                """).run()
        }
    }

    public func revert(on database: any Database) async throws {
        guard let sql = database as? any SQLDatabase, sql.dialect.name == "sqlite" else { return }
        for event in ["insert", "update", "delete"] {
            try await sql.raw("DROP TRIGGER IF EXISTS \(unsafeRaw: table)_changes_\(unsafeRaw: event)").run()
        }
        try await sql.raw("DELETE FROM table_changes WHERE name = '\(unsafeRaw: table)'").run()
    }
}
