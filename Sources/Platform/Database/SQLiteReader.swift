import FluentSQLiteDriver
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// A read-only SQLite connection, opened on first use, with a thread of its own (SQLite's calls
/// block) so that reads never queue behind the writer's transactions.
final class SQLiteReader: Sendable {
    private enum State {
        case closed
        case opening(Task<SQLiteConnection, any Error>)
        case open(SQLiteConnection, any SQLDatabase)
        case shutDown
    }

    private let path: String
    private let logger: Logger
    private let threadPool = NIOThreadPool(numberOfThreads: 1)
    private let state = Mutex(State.closed)

    init(path: String, logger: Logger) {
        self.path = path
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
                let task = Task { [path, logger, threadPool] in try await Self.open(path: path, threadPool: threadPool, logger: logger) }
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

    private static func open(path: String, threadPool: NIOThreadPool, logger: Logger) async throws -> SQLiteConnection {
        let connection = try await SQLiteConnection.open(
            storage: .file(path: path), threadPool: threadPool, logger: logger, on: MultiThreadedEventLoopGroup.singleton.any()
        )
        do {
            let sql = connection.sql(queryLogLevel: .trace)
            // This connection only reads; the pool's connection writes.
            try await sql.raw("PRAGMA query_only=ON").run()
            // A reader waits for a lock only in rare cases (WAL recovery): sleep, don't spin.
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
