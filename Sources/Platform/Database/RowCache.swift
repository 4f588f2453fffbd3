import CoreMetrics
import Synchronization

/// Rows that requests read again and again (a user by id, by access key), kept in memory for as
/// long as the database has not changed since they were read. Made by `ServiceDatabase.rowCache`
/// and used through `ServiceDatabase.read(_:key:_:)`.
///
/// Whether the database changed is SQLite's answer, not a guess: before each lookup the reader
/// connection's `PRAGMA data_version` tells whether any other connection (this process's writer,
/// Fluent's pool, another process on the same file) has committed since it last asked; when one
/// has, every row kept is let go, whichever rows the commit touched. A lookup whose version is
/// read before the row is read can never keep a row older than the version it is filed under, so
/// a read that starts after a write has committed never sees a row from before it.
///
/// PostgreSQL keeps nothing here: its replicas write without this process seeing a version.
public final class RowCache<Value: Sendable>: Sendable {
    private struct State {
        /// The reader's data version the rows were read at.
        var version: Int64?
        var rows: [String: Value] = [:]
    }

    private let state = Mutex(State())
    /// Rows kept at most; a full cache starts over (the rows of the busiest callers come back
    /// first), which keeps a flood of distinct keys from growing it.
    public let capacity: Int
    private let hits: Counter?
    private let misses: Counter?

    init(name: String, capacity: Int, metrics: (any MetricsFactory)?) {
        self.capacity = max(1, capacity)
        hits = metrics.map { Counter(label: "aisaas_db_cache_lookups_total", dimensions: [("cache", name), ("result", "hit")], factory: $0) }
        misses = metrics.map { Counter(label: "aisaas_db_cache_lookups_total", dimensions: [("cache", name), ("result", "miss")], factory: $0) }
    }

    /// The row kept under `key` if the database is still at `version`. A new version lets every
    /// row go.
    func row(for key: String, at version: Int64) -> Value? {
        let row = state.withLock { state -> Value? in
            guard state.version == version else {
                state.version = version
                state.rows.removeAll(keepingCapacity: true)
                return nil
            }
            return state.rows[key]
        }
        if row == nil { misses?.increment() } else { hits?.increment() }
        return row
    }

    /// Keeps a row read after the database's version was found to be `version`, unless the version
    /// has moved on since (the row may be older than the newer version).
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
