import FluentKit
import FluentSQLiteDriver
import Logging
import NIOCore
import NIOPosix
import SQLKit
import Synchronization
// The SQLite that SQLiteNIO bundles, and Fluent's connections to the same file use: a second copy
// of SQLite in the process would not see the first one's POSIX locks, and each could write over
// the other. SQLiteNIO exports no C module of its own; this is its C target, which the package
// manager makes visible to every target that depends on SQLiteNIO.
import VaporCSQLite

/// An SQLite connection whose statements run on the caller's thread, one caller at a time, with
/// its prepared statements kept for reuse.
///
/// SQLiteNIO runs each statement on a thread pool and answers through an event loop: two or
/// three thread hand-offs per statement, which on the benchmark machine cost far more (50–100 µs
/// each) than the statements the platform runs on a request (a primary-key read, a one-row
/// insert, a few µs to a few tens of µs under WAL with `synchronous=NORMAL`, where a commit writes
/// to the WAL file without an fsync). Here the statement runs where the request runs, on its
/// event loop: no hand-off at all. What may take long stays off it: migrations on Fluent's pool,
/// reports over a whole history on a thread of their own (`ServiceDatabase.scans`); admin
/// pages of many rows go through `reads()` and stay short with their LIMITs.
///
/// Under WAL readers never wait for the writer. The writer may find the write lock taken by
/// Fluent's pool (admin changes, migrations) or another process: a statement that starts a write
/// outside a transaction (or `BEGIN IMMEDIATE`) then gets `SQLITE_BUSY` at once and is tried again
/// after a pause in which the caller's thread serves other work, for at most 10 s; SQLite's own
/// busy handler would sleep on the thread, which here is an event loop.
final class InlineSQLiteConnection: Sendable {
    enum Access: Sendable {
        case readOnly, readWrite
    }

    private let path: String
    private let access: Access
    private let state = Mutex(State.closed)

    init(path: String, access: Access) {
        self.path = path
        self.access = access
    }

    private enum State {
        case closed
        case open(OpenConnection)
        case shutDown
    }

    /// How long a write waits, in all, for a lock another connection holds.
    static let busyWait: Duration = .seconds(10)

    /// Runs one statement; `onRow` gets each row as it is read. A write that found the database
    /// locked (`SQLITE_BUSY` outside a transaction, where it may be run again) is tried again after
    /// a pause, for at most `busyWait`.
    func run(_ sql: String, binds: [SQLiteData], onRow: (InlineSQLiteRow) throws -> Void) async throws {
        var pause = Duration.microseconds(500)
        let deadline = ContinuousClock.now + Self.busyWait
        while true {
            do {
                return try runOnce(sql, binds: binds, onRow: onRow)
            } catch let error as InlineSQLiteError where error.isRetryableBusy && ContinuousClock.now + pause < deadline {
                await Self.wait(pause)
                pause = min(pause * 2, .milliseconds(50))
            }
        }
    }

    /// Copies the write-ahead log back into the database file and has the next commit start the
    /// log over (RESTART), waiting up to a second for readers still on it. It blocks for the
    /// copy and its sync: call it off the event loops, with no write in flight.
    func checkpoint() throws {
        try state.withLock { state in
            guard case .open(let connection) = state else { return }
            try connection.checkpoint()
        }
    }

    /// A pause on a timer of the caller's event loop. Cancellation does not end it: a write that
    /// a group commit runs for other callers must not be cut short by the one that runs it.
    private static func wait(_ pause: Duration) async {
        let delay = TimeAmount(pause)
        let loop = MultiThreadedEventLoopGroup.currentEventLoop ?? MultiThreadedEventLoopGroup.singleton.any()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            loop.scheduleTask(in: delay) { continuation.resume() }
        }
    }

    /// One statement on the calling thread, without the busy retries of `run` (reads on a thread
    /// of their own call it directly).
    func runOnce(_ sql: String, binds: [SQLiteData], onRow: (InlineSQLiteRow) throws -> Void) throws {
        try withConnection { try $0.run(sql, binds: binds, onRow: onRow) }
    }

    /// The first column of the first row of `sql`, a statement without parameters, as an integer;
    /// nil when it answers no row.
    func integer(_ sql: String) throws -> Int64? {
        try withConnection { try $0.integer(sql) }
    }

    private func withConnection<T>(_ body: (OpenConnection) throws -> T) throws -> T {
        try state.withLock { state in
            let connection: OpenConnection
            switch state {
            case .open(let open):
                connection = open
            case .closed:
                connection = try OpenConnection(path: path, access: access)
                state = .open(connection)
            case .shutDown:
                throw InlineSQLiteError(code: SQLITE_MISUSE, message: "the database at \(path) is shut down")
            }
            return try body(connection)
        }
    }

    func close() {
        state.withLock { state in
            if case .open(let connection) = state { connection.close() }
            state = .shutDown
        }
    }

    /// The connection as a SQLKit database (SQLite's dialect, SQLiteKit's value coding). With
    /// `threadPool`, statements run there instead of on the caller's thread (long reads).
    func sql(logger: Logger, runningOn threadPool: NIOThreadPool? = nil) -> any SQLDatabase {
        InlineSQLiteDatabase(connection: self, logger: logger, threadPool: threadPool)
    }

}

/// The raw handle and its prepared statements.
///
/// `@unchecked Sendable`: the one reference to an instance is held in `InlineSQLiteConnection`'s
/// `state`, and every use of it (`run`, `integer`, `checkpoint`, `close`) happens inside that
/// mutex's `withLock`, so no two threads ever touch the handle or the statement cache at once
/// (the handle is opened with `SQLITE_OPEN_NOMUTEX` for that reason).
private final class OpenConnection: @unchecked Sendable {
    private let handle: OpaquePointer
    private var statements: [String: OpaquePointer] = [:]
    /// Statements kept (the platform's hot statements are a few dozen texts: SQLKit binds every
    /// value).
    private static let maxStatements = 128

    init(path: String, access: InlineSQLiteConnection.Access) throws {
        var handle: OpaquePointer?
        let flags = (access == .readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
            | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI
        let status = sqlite_nio_sqlite3_open_v2(path, &handle, flags, nil)
        guard status == SQLITE_OK, let handle else {
            let message = handle.flatMap { sqlite_nio_sqlite3_errmsg($0) }.map { String(cString: $0) } ?? "cannot open"
            if let handle { sqlite_nio_sqlite3_close(handle) }
            throw InlineSQLiteError(code: status, message: "\(message) (\(path))")
        }
        self.handle = handle
        do {
            switch access {
            case .readOnly:
                // Readers wait only while WAL recovery runs, rarely and briefly: SQLite's own
                // handler sleeps for them, at most 10 s.
                sqlite_nio_sqlite3_busy_timeout(handle, 10_000)
                try execute("PRAGMA query_only=ON")
            case .readWrite:
                // No busy handler: `InlineSQLiteConnection.run` waits without holding the thread.
                // As on the pool's connection (see `ServiceDatabase.migrate`): per connection.
                try execute("PRAGMA synchronous=NORMAL")
                // A checkpoint copies the WAL into the file and syncs it: milliseconds that must
                // not stop an event loop. `ServiceDatabase` runs them on the pool's thread.
                try execute("PRAGMA wal_autocheckpoint=0")
            }
        } catch {
            sqlite_nio_sqlite3_close(handle)
            throw error
        }
    }

    func checkpoint() throws {
        sqlite_nio_sqlite3_busy_timeout(handle, 1000)
        defer { sqlite_nio_sqlite3_busy_timeout(handle, 0) }
        let status = sqlite_nio_sqlite3_wal_checkpoint_v2(handle, nil, SQLITE_CHECKPOINT_RESTART, nil, nil)
        // BUSY: a reader kept an old snapshot past the wait; what could be copied was, and the
        // next checkpoint finishes the job.
        if status != SQLITE_OK && status != SQLITE_BUSY { throw error(status) }
    }

    private func execute(_ sql: String) throws {
        try run(sql, binds: [], onRow: { _ in })
    }

    func run(_ sql: String, binds: [SQLiteData], onRow: (InlineSQLiteRow) throws -> Void) throws {
        // Judged before the statement runs: SQLite may roll back a transaction on an error, after
        // which it is in autocommit again though the statement was part of that transaction.
        let outsideTransaction = sqlite_nio_sqlite3_get_autocommit(handle) != 0
        let (statement, kept) = try prepared(sql)
        defer {
            if kept {
                sqlite_nio_sqlite3_reset(statement)
                sqlite_nio_sqlite3_clear_bindings(statement)
            } else {
                sqlite_nio_sqlite3_finalize(statement)
            }
        }
        guard Int(sqlite_nio_sqlite3_bind_parameter_count(statement)) == binds.count else {
            throw InlineSQLiteError(code: SQLITE_RANGE, message: "\(binds.count) values for the statement's \(sqlite_nio_sqlite3_bind_parameter_count(statement)) parameters")
        }
        for (offset, value) in binds.enumerated() {
            try check(bind(value, at: Int32(offset + 1), of: statement))
        }
        var columns: InlineSQLiteRow.Columns?
        while true {
            let status = sqlite_nio_sqlite3_step(statement)
            switch status {
            case SQLITE_ROW:
                let names = columns ?? InlineSQLiteRow.Columns(statement)
                columns = names
                try onRow(InlineSQLiteRow(columns: names, values: Self.values(of: statement, count: names.names.count)))
            case SQLITE_DONE:
                return
            default:
                var failure = error(status)
                // Outside a transaction nothing was done: the statement may run again.
                failure.retryable = outsideTransaction && sqlite_nio_sqlite3_get_autocommit(handle) != 0
                throw failure
            }
        }
    }

    /// The first column of the first row of a statement without parameters, read as an integer
    /// (no row or column names made for it); nil when there is no row.
    func integer(_ sql: String) throws -> Int64? {
        let (statement, kept) = try prepared(sql)
        defer {
            if kept { sqlite_nio_sqlite3_reset(statement) } else { sqlite_nio_sqlite3_finalize(statement) }
        }
        switch sqlite_nio_sqlite3_step(statement) {
        case SQLITE_ROW: return sqlite_nio_sqlite3_column_int64(statement, 0)
        case SQLITE_DONE: return nil
        case let status: throw error(status)
        }
    }

    /// The statement for `sql`, and whether it is kept for reuse. Statements with many
    /// parameters (multi-row inserts, long `IN` lists: one text per size) are not kept, so they
    /// cannot push the hot statements out; when the cache is full, one entry makes room.
    private func prepared(_ sql: String) throws -> (OpaquePointer, kept: Bool) {
        if let statement = statements[sql] { return (statement, true) }
        var statement: OpaquePointer?
        let status = sqlite_nio_sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard status == SQLITE_OK, let statement else { throw error(status) }
        guard sqlite_nio_sqlite3_bind_parameter_count(statement) <= Self.maxKeptParameters else { return (statement, false) }
        if statements.count >= Self.maxStatements, let evicted = statements.first {
            sqlite_nio_sqlite3_finalize(evicted.value)
            statements.removeValue(forKey: evicted.key)
        }
        statements[sql] = statement
        return (statement, true)
    }

    /// The most parameters of a statement kept prepared (a one-row usage record has 19).
    private static let maxKeptParameters: Int32 = 32

    private func bind(_ value: SQLiteData, at index: Int32, of statement: OpaquePointer) -> Int32 {
        switch value {
        case .integer(let integer):
            return sqlite_nio_sqlite3_bind_int64(statement, index, Int64(integer))
        case .float(let double):
            return sqlite_nio_sqlite3_bind_double(statement, index, double)
        case .text(let text):
            return text.utf8CString.withUnsafeBufferPointer { bytes in
                sqlite_nio_sqlite3_bind_text64(statement, index, bytes.baseAddress, UInt64(bytes.count - 1), Self.transient, UInt8(SQLITE_UTF8))
            }
        case .blob(let buffer):
            return buffer.withUnsafeReadableBytes { bytes in
                // A zero-length blob still needs a non-null pointer to be a blob, not NULL.
                sqlite_nio_sqlite3_bind_blob64(statement, index, bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1), UInt64(bytes.count), Self.transient)
            }
        case .null:
            return sqlite_nio_sqlite3_bind_null(statement, index)
        }
    }

    /// SQLite copies the value before the call returns.
    private static let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

    private static func values(of statement: OpaquePointer, count: Int) -> [SQLiteData] {
        var values: [SQLiteData] = []
        values.reserveCapacity(count)
        for column in 0..<Int32(count) {
            switch sqlite_nio_sqlite3_column_type(statement, column) {
            case SQLITE_INTEGER:
                values.append(.integer(SQLiteInt64(sqlite_nio_sqlite3_column_int64(statement, column))))
            case SQLITE_FLOAT:
                values.append(.float(sqlite_nio_sqlite3_column_double(statement, column)))
            case SQLITE_TEXT:
                let bytes = Int(sqlite_nio_sqlite3_column_bytes(statement, column))
                let text = sqlite_nio_sqlite3_column_text(statement, column).map {
                    String(decoding: UnsafeBufferPointer(start: $0, count: bytes), as: UTF8.self)
                }
                values.append(.text(text ?? ""))
            case SQLITE_BLOB:
                let bytes = Int(sqlite_nio_sqlite3_column_bytes(statement, column))
                let buffer = sqlite_nio_sqlite3_column_blob(statement, column).map {
                    ByteBuffer(bytes: UnsafeRawBufferPointer(start: $0, count: bytes))
                }
                values.append(.blob(buffer ?? ByteBuffer()))
            default:
                values.append(.null)
            }
        }
        return values
    }

    private func check(_ status: Int32) throws {
        if status != SQLITE_OK { throw error(status) }
    }

    private func error(_ status: Int32) -> InlineSQLiteError {
        InlineSQLiteError(code: status, message: sqlite_nio_sqlite3_errmsg(handle).map { String(cString: $0) } ?? "unknown error")
    }

    private func finalizeAll() {
        for statement in statements.values { sqlite_nio_sqlite3_finalize(statement) }
        statements.removeAll()
    }

    func close() {
        finalizeAll()
        sqlite_nio_sqlite3_close(handle)
    }
}

/// A row of an inline statement.
struct InlineSQLiteRow: SQLRow {
    /// A statement's column names, read once per execution.
    final class Columns: Sendable {
        let names: [String]
        let index: [String: Int]

        init(_ statement: OpaquePointer) {
            let count = Int(sqlite_nio_sqlite3_column_count(statement))
            names = (0..<Int32(count)).map { column in sqlite_nio_sqlite3_column_name(statement, column).map { String(cString: $0) } ?? "" }
            // The first of equal names wins, as SQLiteNIO's rows answer.
            index = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        }
    }

    let columns: Columns
    let values: [SQLiteData]

    var allColumns: [String] { columns.names }

    func contains(column: String) -> Bool { columns.index[column] != nil }

    func value(_ column: String) -> SQLiteData? {
        columns.index[column].map { values[$0] }
    }

    func decodeNil(column: String) throws -> Bool {
        (value(column) ?? .null) == .null
    }

    func decode<D: Decodable>(column: String, as type: D.Type) throws -> D {
        guard let value = value(column) else { throw InlineSQLiteError(code: SQLITE_RANGE, message: "no column \(column)") }
        // Text as String and integers as Int or Int64 directly: what SQLiteDataDecoder answers
        // for them, without a decoder per column (a user's row is eleven of them).
        switch value {
        case .text(let text) where D.self == String.self:
            if let decoded = text as? D { return decoded }
        case .integer(let integer) where D.self == Int.self:
            if let decoded = integer as? D { return decoded }
        case .integer(let integer) where D.self == Int64.self:
            if let decoded = Int64(integer) as? D { return decoded }
        default:
            break
        }
        return try Self.decoder.decode(D.self, from: value)
    }

    /// One for all rows: each `SQLiteDataDecoder()` makes a JSONDecoder.
    private static let decoder = SQLiteDataDecoder()
}

/// SQLite's result code and message.
public struct InlineSQLiteError: Error, CustomStringConvertible, DatabaseError {
    public let code: Int32
    public let message: String
    /// The statement failed outside a transaction, so running it again is safe.
    var retryable = false

    init(code: Int32, message: String) {
        self.code = code
        self.message = message
    }

    /// The write lock was taken and the statement may simply run again.
    var isRetryableBusy: Bool { retryable && primaryCode == SQLITE_BUSY }

    public var description: String { "SQLite error \(code): \(message)" }

    /// The primary result code (extended codes carry it in their low byte).
    var primaryCode: Int32 { code & 0xFF }

    public var isSyntaxError: Bool { primaryCode == SQLITE_ERROR }
    public var isConstraintFailure: Bool { primaryCode == SQLITE_CONSTRAINT }
    public var isConnectionClosed: Bool { primaryCode == SQLITE_MISUSE }

    /// The file is locked, unreadable, full or read-only: the database cannot serve now.
    public var meansUnavailable: Bool {
        [SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_READONLY, SQLITE_MISUSE].contains(primaryCode)
    }
}

/// `InlineSQLiteConnection` as SQLKit's database: queries are serialized in SQLite's dialect and
/// run on the caller's thread.
private struct InlineSQLiteDatabase: SQLDatabase {
    let connection: InlineSQLiteConnection
    let logger: Logger
    let threadPool: NIOThreadPool?

    var eventLoop: any EventLoop { MultiThreadedEventLoopGroup.currentEventLoop ?? MultiThreadedEventLoopGroup.singleton.any() }
    var version: (any SQLDatabaseReportedVersion)? { nil }
    var dialect: any SQLDialect { SQLiteDialect() }
    var queryLogLevel: Logger.Level? { .trace }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        promise.completeWithTask { try await execute(sql: query, onRow) }
        return promise.futureResult
    }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) async throws {
        let (sql, rawBinds) = serialize(query)
        logger.trace("Executing query", metadata: ["sql": .string(sql)])
        let encoder = SQLiteDataEncoder()
        let binds = try rawBinds.map { try encoder.encode($0) }
        if let threadPool {
            try await threadPool.runIfActive { [connection] in try connection.runOnce(sql, binds: binds) { onRow($0) } }
            return
        }
        try await connection.run(sql, binds: binds) { onRow($0) }
    }

    func withSession<R>(_ closure: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await closure(self)
    }
}
