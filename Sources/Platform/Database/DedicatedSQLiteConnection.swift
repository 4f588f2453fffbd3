import FluentSQLiteDriver
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// An SQLite connection outside Fluent's pool, opened on first use, with a thread of its own
/// (SQLite's calls block). The read-only one serves reads, which then never queue behind the
/// writer's transactions; the read-write one serves the writes that go around Fluent.
final class DedicatedSQLiteConnection: Sendable {
    enum Access: Sendable {
        case readOnly, readWrite
    }

    private enum State {
        case closed
        case opening(Task<SQLiteConnection, any Error>)
        case open(SQLiteConnection, any SQLDatabase)
        case shutDown
    }

    private let path: String
    private let access: Access
    private let logger: Logger
    private let threadPool = NIOThreadPool(numberOfThreads: 1)
    private let state = Mutex(State.closed)

    init(path: String, access: Access, logger: Logger) {
        self.path = path
        self.access = access
        self.logger = logger
        threadPool.start()
    }

    func database() async throws -> any SQLDatabase {
        enum Next {
            case ready(any SQLDatabase)
            case wait(Task<SQLiteConnection, any Error>)
        }
        let next: Next = try state.withLock { state in
            switch state {
            case .open(_, let sql):
                return .ready(sql)
            case .opening(let task):
                return .wait(task)
            case .closed:
                let task = Task { [path, access, logger, threadPool] in
                    try await Self.open(path: path, access: access, threadPool: threadPool, logger: logger)
                }
                state = .opening(task)
                return .wait(task)
            case .shutDown:
                throw DatabaseConfigurationError("the database at \(path) is shut down")
            }
        }
        switch next {
        case .ready(let sql):
            return sql
        case .wait(let task):
            do {
                let connection = try await task.value
                let sql: (any SQLDatabase)? = state.withLock { state in
                    switch state {
                    case .open(_, let sql):
                        return sql
                    case .opening:
                        let sql = connection.sql(queryLogLevel: .trace)
                        state = .open(connection, sql)
                        return sql
                    case .closed, .shutDown:
                        // Shut down meanwhile; `close()` closes the connection it was opening.
                        return nil
                    }
                }
                guard let sql else { throw DatabaseConfigurationError("the database at \(path) is shut down") }
                return sql
            } catch {
                state.withLock { state in
                    if case .opening = state { state = .closed }
                }
                throw error
            }
        }
    }

    private static func open(path: String, access: Access, threadPool: NIOThreadPool, logger: Logger) async throws -> SQLiteConnection {
        let connection = try await SQLiteConnection.open(
            storage: .file(path: path), threadPool: threadPool, logger: logger, on: MultiThreadedEventLoopGroup.singleton.any()
        )
        do {
            let sql = connection.sql(queryLogLevel: .trace)
            switch access {
            case .readOnly:
                try await sql.raw("PRAGMA query_only=ON").run()
            case .readWrite:
                // As on the pool's connection (see `ServiceDatabase.migrate`): per connection.
                try await sql.raw("PRAGMA synchronous=NORMAL").run()
            }
            // Another connection's transaction holds the write lock (or WAL recovery runs): wait
            // for it, sleeping between tries, at most 10 s (SQLiteNIO's own handler spins).
            try await sql.raw("PRAGMA busy_timeout=10000").run()
        } catch {
            try? await connection.close()
            throw error
        }
        return connection
    }

    func close() async {
        let previous = state.withLock { state in
            defer { state = .shutDown }
            return state
        }
        switch previous {
        case .open(let connection, _):
            try? await connection.close()
        case .opening(let task):
            try? await task.value.close()
        case .closed, .shutDown:
            break
        }
        try? await threadPool.shutdownGracefully()
    }
}
