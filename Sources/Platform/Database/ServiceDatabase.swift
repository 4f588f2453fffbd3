import FluentKit
import FluentPostgresDriver
import FluentSQLiteDriver
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Where a service keeps its data: an SQLite file (the embedded default) or PostgreSQL.
public enum DatabaseLocation: Sendable, Equatable, CustomStringConvertible {
    case sqlite(path: String)
    case postgres(url: String)

    /// Reads a `…_DATABASE_URL` setting: `postgres://…` / `postgresql://…`, `sqlite:PATH`, or
    /// nothing for `defaultSQLitePath`.
    public static func parse(_ setting: String?, defaultSQLitePath: String) -> Result<DatabaseLocation, ConfigurationError> {
        guard let setting else { return .success(.sqlite(path: defaultSQLitePath)) }
        if setting.hasPrefix("postgres://") || setting.hasPrefix("postgresql://") {
            let location = DatabaseLocation.postgres(url: setting)
            // The driver's own error quotes the whole URL, password included.
            guard (try? SQLPostgresConfiguration(url: setting)) != nil else {
                return .failure(ConfigurationError(problems: [
                    "\(location) is not a PostgreSQL URL the driver takes (check its host, port, database name and sslmode)",
                ]))
            }
            return .success(location)
        }
        if setting.hasPrefix("sqlite:") {
            let path = String(setting.dropFirst("sqlite:".count)).replacingOccurrences(of: "//", with: "", options: .anchored)
            return path.isEmpty ? .failure(ConfigurationError(problems: ["sqlite URL without a path: \(setting)"])) : .success(.sqlite(path: path))
        }
        // Not quoted: a mistyped URL may still carry a password.
        return .failure(ConfigurationError(problems: ["database URL must start with postgres://, postgresql:// or sqlite:"]))
    }

    public var description: String {
        switch self {
        case .sqlite(let path):
            return "sqlite:\(path)"
        case .postgres(let url):
            // Never log the password.
            guard var components = URLComponents(string: url) else { return "postgres://***" }
            guard components.password != nil else { return url }
            components.password = "***"
            return components.string ?? "postgres://***"
        }
    }
}

/// A service's connection pool and migrations.
public final class ServiceDatabase: Sendable {
    public let location: DatabaseLocation
    private let databases: Databases
    /// SQLite work all goes through one event loop, whose pool holds a single connection: SQLite
    /// lets one writer in at a time, and connections of one process waiting for each other spin
    /// in SQLite's busy handler, burning CPU for nothing.
    private let sqliteEventLoop: (any EventLoop)?
    private let sqliteThreadPool: NIOThreadPool?
    private let shutdownHooks = Mutex<(hooks: [@Sendable () async -> Void], run: Task<Void, Never>?)>(([], nil))
    /// SQLite only: the connection and thread of `scans()`, once asked for.
    private let scanner = Mutex<(connection: InlineSQLiteConnection, thread: NIOThreadPool)?>(nil)
    /// SQLite only: a second, read-only connection for `reads()`, run on the caller's thread.
    private let sqliteReader: InlineSQLiteConnection?
    /// SQLite only: a read-write connection for `write` and `writeTransaction`, run on the
    /// caller's thread, taken by one caller at a time.
    private let sqliteWriter: InlineSQLiteConnection?
    private let writerLock = AsyncSerialLock()
    /// SQLite only: the writer's commits since its last checkpoint, and the checkpoint running.
    private let checkpoints = Mutex<(commits: Int, running: Bool, last: Task<Void, Never>?)>((0, false, nil))
    private let migrations: Migrations
    /// The same, in order: what `prepareUnapplied` runs.
    private let migrationList: [any Migration]
    private let logger: Logger
    /// Statement durations and spans; nil for a database built without telemetry.
    private let instrumentation: DatabaseInstrumentation?
    /// Built whole (a failed init has nothing to shut down), and then shut down: a database
    /// released without `shutdown()` leaves its pools open, which debug builds report by name.
    private let built = Atomic<Bool>(false)
    private let shutDown = Atomic<Bool>(false)

    public init(location: DatabaseLocation, migrations: [any Migration], logger: Logger, telemetry: Telemetry? = nil) throws {
        self.location = location
        self.logger = logger
        instrumentation = telemetry.map { DatabaseInstrumentation(telemetry: $0, location: location) }
        switch location {
        case .sqlite(let path):
            if let mode = try Self.createPrivately(sqlitePath: path), mode & 0o077 != 0 {
                logger.warning(
                    "the SQLite database is readable by others than the process's user: it holds password hashes and sealed keys",
                    metadata: ["path": "\(path)", "mode": "\(String(mode, radix: 8))", "fix": "chmod 600 \(path)"]
                )
            }
            // SQLite's calls block their thread, and SQLiteNIO's busy handler spins until the
            // lock is free: one thread of its own per database, so that a connection waiting
            // for another's transaction never holds up that transaction's next statement
            // (several databases of one process on one file, as replicas in the tests are).
            let pool = NIOThreadPool(numberOfThreads: 1)
            pool.start()
            sqliteThreadPool = pool
            databases = Databases(threadPool: pool, on: MultiThreadedEventLoopGroup.singleton)
            databases.use(.sqlite(.file(path), maxConnectionsPerEventLoop: 1, sqlLogLevel: .trace), as: .sqlite)
            sqliteEventLoop = MultiThreadedEventLoopGroup.singleton.next()
            sqliteReader = InlineSQLiteConnection(path: path, access: .readOnly)
            sqliteWriter = InlineSQLiteConnection(path: path, access: .readWrite)
        case .postgres(let url):
            guard var configuration = try? SQLPostgresConfiguration(url: url) else {
                throw DatabaseConfigurationError("\(location) is not a PostgreSQL URL the driver takes")
            }
            configuration.searchPath = nil
            sqliteThreadPool = nil
            databases = Databases(threadPool: NIOThreadPool.singleton, on: MultiThreadedEventLoopGroup.singleton)
            databases.use(.postgres(configuration: configuration, maxConnectionsPerEventLoop: 8, sqlLogLevel: .trace), as: .psql)
            sqliteEventLoop = nil
            sqliteReader = nil
            sqliteWriter = nil
        }
        let registry = Migrations()
        registry.add(migrations)
        self.migrations = registry
        migrationList = migrations
        // SQLite: the pool's one connection, the reader and the writer. PostgreSQL: the pool's
        // connections on each event loop.
        let capacity = sqliteReader == nil ? 8 * System.coreCount : 3
        instrumentation?.reportConnections(capacity: capacity) { [weak writerLock] in writerLock?.waitingCount ?? 0 }
        built.store(true, ordering: .releasing)
    }

    /// A new database file holds password hashes, sealed secret keys and usage: readable by the
    /// process's user alone (SQLite would make it 0644). Its WAL and shared-memory files take the
    /// database file's mode. A directory this makes is 0700; an existing file or directory keeps
    /// the mode its operator gave it, which this returns (nil for a file it made).
    static func createPrivately(sqlitePath path: String) throws -> mode_t? {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if descriptor >= 0 {
            close(descriptor)
            return nil
        }
        guard errno == EEXIST else {
            throw DatabaseConfigurationError("cannot create the SQLite database \(path): \(String(cString: strerror(errno)))")
        }
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        return status.st_mode & 0o777
    }

    deinit {
        assert(
            !built.load(ordering: .acquiring) || shutDown.load(ordering: .acquiring),
            "the database \(location) of \(logger.label) was released without shutdown()"
        )
    }

    /// A handle for one unit of work; handles are cheap and spread work over the event loops.
    /// Its model operations and statements are measured when the database has telemetry.
    public func database(logger: Logger? = nil) -> any Database {
        let database = poolDatabase(logger: logger)
        guard let instrumentation else { return database }
        return InstrumentedFluentDatabase(base: database, instrumentation: instrumentation) ?? database
    }

    private func poolDatabase(logger: Logger? = nil) -> any Database {
        // `Databases` always has the one configuration registered in `init`.
        databases.database(logger: logger ?? self.logger, on: sqliteEventLoop ?? MultiThreadedEventLoopGroup.singleton.any())!
    }

    /// Records each group commit's size in `aisaas_db_write_batch_size{writer}`; nil without telemetry.
    public func batchObserver(writer: String) -> (@Sendable (Int) -> Void)? {
        instrumentation?.batchObserver(writer: writer)
    }

    /// For the reads that serve requests (lookups outside a transaction). On SQLite these go to a
    /// read-only connection of their own, run on the caller's thread (`InlineSQLiteConnection`):
    /// the pool's path (an event loop hop to lease the connection, a future per row, a hop back)
    /// cost about 0.12 ms per read, as much as the rest of the user service's work on a request
    /// (bench/README.md). Under WAL a reader sees every committed write and never waits for the
    /// writer. On PostgreSQL this is the pool.
    public func reads() async throws -> any SQLDatabase {
        guard let sqliteReader else {
            return try poolSQL()
        }
        return instrumented(sqliteReader.sql(logger: logger))
    }

    /// A cache of rows of `table` for `read(_:key:_:)`, its lookups counted in
    /// `aisaas_db_cache_lookups_total{cache}` when the database has telemetry. It keeps rows on
    /// SQLite only, where the service's migrations must include `CountTableChanges(table:)`.
    public func rowCache<Value: Sendable>(named name: String, table: String, capacity: Int = 10_000) -> RowCache<Value> {
        RowCache(name: name, table: table, capacity: capacity, metrics: sqliteReader == nil ? nil : instrumentation?.telemetry.metrics)
    }

    /// The row under `key`: from `cache` while its table's change count has not moved since it
    /// was kept, otherwise from `read`, kept when found. `read` must read through `reads()`
    /// outside any transaction (a snapshot at least as new as the count). A row from the cache
    /// runs no statement, so it has no database span or timer; reading the count, one step of a
    /// prepared statement on the reader, is not measured either. On a traced `/user/current` the
    /// statement it saves, with its span and its timer, was about a fifth of the request's CPU
    /// (bench/README.md). On PostgreSQL every call reads, and so does every call on SQLite while
    /// the count cannot be read (its row or table removed by hand): the cache is never why a
    /// lookup fails.
    public func read<Value: Sendable>(_ cache: RowCache<Value>, key: String, _ read: () async throws -> Value?) async throws -> Value? {
        guard let sqliteReader, let version = try? sqliteReader.integer(cache.versionQuery) else { return try await read() }
        if let row = cache.row(for: key, at: version) { return row }
        guard let row = try await read() else { return nil }
        cache.keep(row, for: key, readAt: version)
        return row
    }

    /// For reads that may scan much of a table (usage reports, counts over a whole history). On
    /// SQLite these run on a read-only connection and a thread of their own, made on first use:
    /// on the caller's thread (`reads()`) a report over millions of rows held an event loop for
    /// seconds, and on the pool's thread it held up the availability ping and the WAL checkpoint
    /// that share it. Such reads take turns on that thread. On PostgreSQL this is the pool.
    public func scans() throws -> any SQLDatabase {
        guard case .sqlite(let path) = location else { return try poolSQL() }
        let made = try scanner.withLock { scanner -> (connection: InlineSQLiteConnection, thread: NIOThreadPool) in
            if let scanner { return scanner }
            guard !shutDown.load(ordering: .acquiring) else { throw DatabaseConfigurationError("the database \(location) is shut down") }
            let thread = NIOThreadPool(numberOfThreads: 1)
            thread.start()
            let made = (connection: InlineSQLiteConnection(path: path, access: .readOnly), thread: thread)
            scanner = made
            return made
        }
        return instrumented(made.connection.sql(logger: logger, runningOn: made.thread))
    }

    /// Whether `write` and `writeTransaction` run on the caller's thread (SQLite): nothing in them
    /// heeds cancellation, so a caller's cancellation cannot cut them short and group commits need
    /// no task of their own to protect them.
    public var writesInline: Bool { sqliteWriter != nil }

    /// `holdsConnection` false for statements inside a measured transaction (counted by it).
    private func instrumented(_ sql: any SQLDatabase, holdsConnection: Bool = true) -> any SQLDatabase {
        guard let instrumentation else { return sql }
        return InstrumentedSQLDatabase(base: sql, instrumentation: instrumentation, holdsConnection: holdsConnection)
    }

    /// `body` as one measured operation ("TRANSACTION") when instrumented.
    private func measuredTransaction<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        guard let instrumentation else { return try await body() }
        return try await instrumentation.measure(operation: "TRANSACTION", table: "", body)
    }

    /// Runs `body` with the connection for writes that go around Fluent's models. On SQLite it is a
    /// read-write connection run on the caller's thread, that callers take in turn: through the
    /// pool each statement cost three or four thread hand-offs, 0.3–0.4 ms on the benchmark
    /// machine, against none (bench/README.md). A service that writes this
    /// way should write only this way, after its migrations (which use the pool): two writing
    /// connections of one process would wait for each other's locks. On PostgreSQL: the pool.
    public func write<T: Sendable>(_ body: (any SQLDatabase) async throws -> T) async throws -> T {
        guard let sqliteWriter else { return try await body(try poolSQL()) }
        await checkpointIfFallingBehind()
        let result = try await writerLock.withLock { try await body(instrumented(sqliteWriter.sql(logger: logger))) }
        committed()
        return result
    }

    /// Commits between two checkpoints of SQLite's write-ahead log (a commit of the platform's
    /// writes adds a few pages to it; SQLite's own default is every 1,000 pages).
    static let commitsPerCheckpoint = 200

    /// A writer waits for the checkpoint that is due when it has not even started after many
    /// times its commits (a loaded machine had no thread for it): the log stays bounded.
    private func checkpointIfFallingBehind() async {
        let pending = checkpoints.withLock { state -> Task<Void, Never>? in
            state.running && state.commits >= 4 * Self.commitsPerCheckpoint ? state.last : nil
        }
        await pending?.value
    }

    /// Counts a commit of the writer; every `commitsPerCheckpoint`, the log is copied back into
    /// the database file (the writer's automatic checkpoints are off: `InlineSQLiteConnection`).
    /// The checkpoint takes the writer's turn, so that no write goes on beside it (one that did
    /// would keep the log from ever being copied whole and started over: it would grow without
    /// end), and runs on a thread of the pool's: writers wait their turn without holding their
    /// event loop, readers are not stopped.
    private func committed() {
        guard let sqliteWriter, let pool = sqliteThreadPool else { return }
        let start = checkpoints.withLock { state -> Bool in
            state.commits += 1
            guard state.commits >= Self.commitsPerCheckpoint, !state.running else { return false }
            state.commits = 0
            state.running = true
            return true
        }
        guard start else { return }
        let task = Task.detached { [self] in
            do {
                try await writerLock.withLock {
                    try await pool.runIfActive { try sqliteWriter.checkpoint() }
                }
            } catch {
                logger.warning("SQLite checkpoint failed", metadata: ["error": "\(String(reflecting: error))"])
            }
            checkpoints.withLock { $0.running = false }
        }
        checkpoints.withLock { $0.last = task }
    }

    /// `body` in one transaction, on the connection `write` uses. SQLite's transaction takes the
    /// write lock at its start (`BEGIN IMMEDIATE`), so what it reads is what it writes over.
    public func writeTransaction<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        guard let sqliteWriter else {
            return try await measuredTransaction {
                try await poolDatabase().transaction { database in
                    guard let sql = database as? any SQLDatabase else { throw DatabaseConfigurationError("the \(self.location) database does not speak SQL") }
                    return try await body(self.instrumented(sql, holdsConnection: false))
                }
            }
        }
        await checkpointIfFallingBehind()
        return try await writerLock.withLock {
            try await measuredTransaction {
                let sql = sqliteWriter.sql(logger: logger)
                try await sql.raw("BEGIN IMMEDIATE").run()
                do {
                    let result = try await body(instrumented(sql, holdsConnection: false))
                    try await sql.raw("COMMIT").run()
                    committed()
                    return result
                } catch {
                    try? await sql.raw("ROLLBACK").run()
                    throw error
                }
            }
        }
    }

    private func poolSQL() throws -> any SQLDatabase {
        guard let sql = poolDatabase() as? any SQLDatabase else { throw DatabaseConfigurationError("the \(location) database does not speak SQL") }
        return instrumented(sql)
    }

    /// One round trip through the pool, to tell whether the database answers.
    public func ping() async throws {
        guard let sql = poolDatabase() as? any SQLDatabase else { throw DatabaseConfigurationError("the \(location) database does not speak SQL") }
        try await sql.raw("SELECT 1").run()
    }

    /// Brings the schema up to date; each migration runs once. On PostgreSQL an advisory lock
    /// makes replicas that start together take turns, so none sees a half-made schema.
    public func migrate() async throws {
        do {
            try await migrateReachable()
        } catch where DatabaseFailure.isUnavailable(error) {
            throw DatabaseUnreachable(location: location, reason: String(reflecting: error))
        }
    }

    private func migrateReachable() async throws {
        let migrator = Migrator(
            databases: databases, migrations: migrations, logger: logger,
            on: sqliteEventLoop ?? MultiThreadedEventLoopGroup.singleton.any()
        )
        switch location {
        case .sqlite:
            if let sql = poolDatabase() as? any SQLDatabase {
                // WAL lets readers proceed while a writer commits.
                try await sql.raw("PRAGMA journal_mode=WAL").run()
                // With WAL, NORMAL never corrupts the file and loses nothing when the process
                // dies; a power cut may undo the last commits. It spares an fsync per commit.
                // The setting belongs to the connection: the pool's only connection.
                try await sql.raw("PRAGMA synchronous=NORMAL").run()
                // Another process's (or database's) transaction holds the file's write lock:
                // wait for it, sleeping between tries, at most 10 s (SQLiteNIO's own handler
                // spins forever).
                try await sql.raw("PRAGMA busy_timeout=10000").run()
            }
            try await migrator.setupIfNeeded().get()
            try await prepareUnapplied()
        case .postgres:
            try await poolDatabase().withConnection { connection in
                guard let sql = connection as? any SQLDatabase else { return }
                try await sql.raw("SELECT pg_advisory_lock(\(literal: Self.migrationLock))").run()
                do {
                    try await migrator.setupIfNeeded().get()
                    try await self.prepareUnapplied()
                } catch {
                    try? await sql.raw("SELECT pg_advisory_unlock(\(literal: Self.migrationLock))").run()
                    throw error
                }
                try await sql.raw("SELECT pg_advisory_unlock(\(literal: Self.migrationLock))").run()
            }
        }
    }

    /// Runs the migrations not recorded yet, each in one transaction with its record (FluentKit's
    /// migrator commits each statement by itself): a migration cut short by a killed process or a
    /// lost connection leaves nothing behind, and the next start runs it again from the start,
    /// instead of failing on the half it had made ("column already exists") at every start.
    private func prepareUnapplied() async throws {
        let database = poolDatabase()
        let applied = Set(try await MigrationLog.query(on: database).all().map(\.name))
        let batch = (try await MigrationLog.query(on: database).sort(\.$batch, .descending).first()?.batch ?? 0) + 1
        for migration in migrationList where !applied.contains(migration.name) {
            logger.info("migrating", metadata: ["migration": "\(migration.name)"])
            try await database.transaction { transaction in
                try await migration.prepare(on: transaction).get()
                try await MigrationLog(name: migration.name, batch: batch).create(on: transaction)
            }
        }
    }

    /// Any fixed number: the key of the advisory lock that serializes migrations.
    private static let migrationLock = 72_420_001

    /// Work to do while the database still answers, when it is about to close (writes kept
    /// for later, written once more). Run in the order added, once.
    public func beforeShutdown(_ hook: @escaping @Sendable () async -> Void) {
        shutdownHooks.withLock { $0.hooks.append(hook) }
    }

    public func shutdown() async {
        // Started by the first caller; a second waits for the same hooks to finish before closing.
        let hooksRun = shutdownHooks.withLock { state -> Task<Void, Never> in
            if let running = state.run { return running }
            let hooks = state.hooks
            state.hooks = []
            let run = Task { for hook in hooks { await hook() } }
            state.run = run
            return run
        }
        await hooksRun.value
        shutDown.store(true, ordering: .releasing)
        await checkpoints.withLock { $0.last }?.value
        sqliteReader?.close()
        if let scanner = scanner.withLock({ $0 }) {
            // On the scanning thread, after a read in progress (which holds the connection's lock):
            // waited for here, not blocking a thread of Swift's pool meanwhile.
            try? await scanner.thread.runIfActive { scanner.connection.close() }
            try? await scanner.thread.shutdownGracefully()
        }
        await writerLock.withLock { sqliteWriter?.close() }
        await databases.shutdownAsync()
        try? await sqliteThreadPool?.shutdownGracefully()
    }
}

/// A database that did not answer when a process started or migrated: says which (its password
/// masked) and why, where the driver's own error says neither.
public struct DatabaseUnreachable: Error, CustomStringConvertible {
    public let location: DatabaseLocation
    public let reason: String

    public var description: String { "cannot reach the database \(location): \(reason)" }
}

/// A database used in a way its configuration does not allow (shut down, not SQL).
public struct DatabaseConfigurationError: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
