import FluentPostgresDriver
import FluentSQLiteDriver
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Whether an error means the database cannot be reached or cannot serve right now (the server
/// is down, restarting, out of connections, the file locked or unreadable), as opposed to a
/// problem with one request.
public enum DatabaseFailure {
    public static func isUnavailable(_ error: any Error) -> Bool {
        switch error {
        case let error as PSQLError:
            switch error.code {
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed:
                return true
            case .server:
                // Connection exceptions (08), insufficient resources (53), operator intervention (57).
                let state = error.serverInfo?[.sqlState] ?? ""
                return state.hasPrefix("08") || state.hasPrefix("53") || state.hasPrefix("57")
            default:
                return false
            }
        case is ConnectionPoolError, is ConnectionPoolTimeoutError, is NIOConnectionError:
            return true
        case let error as ChannelError:
            switch error {
            case .connectTimeout, .ioOnClosedChannel, .alreadyClosed, .eof: return true
            default: return false
            }
        case is IOError:
            return true
        case let error as InlineSQLiteError:
            return error.meansUnavailable
        case let error as SQLiteError:
            switch error.reason {
            case .busy, .locked, .ioError, .full, .cantOpen, .busyTimeout, .busyInRecovery, .busyInSnapshot, .readOnly: return true
            default: return false
            }
        default:
            return false
        }
    }
}

extension DatabaseFailure {
    /// Whether PostgreSQL ended the transaction to break a deadlock (SQLSTATE 40P01): it may be
    /// run again.
    public static func isDeadlock(_ error: any Error) -> Bool {
        guard let error = error as? PSQLError, error.code == .server else { return false }
        return error.serverInfo?[.sqlState] == "40P01"
    }

    /// Whether a write was refused because a row with the same unique key is there already
    /// (SQLSTATE 23505; SQLite's UNIQUE constraint): for a write tried again after its answer was
    /// lost, the sign that the first try went in.
    public static func isDuplicate(_ error: any Error) -> Bool {
        switch error {
        case let error as PSQLError:
            return error.code == .server && error.serverInfo?[.sqlState] == "23505"
        case let error as InlineSQLiteError:
            return error.isConstraintFailure && error.message.contains("UNIQUE constraint failed")
        default:
            return false
        }
    }

    /// Whether the database refused a value a request carried as text it cannot hold: a NUL
    /// character (SQLSTATE 22021) or one its encoding cannot represent (22P05). The gateway
    /// refuses such values first; this covers any other caller of a service.
    public static func isUnstorableText(_ error: any Error) -> Bool {
        guard let error = error as? PSQLError, error.code == .server else { return false }
        let state = error.serverInfo?[.sqlState] ?? ""
        return state == "22021" || state == "22P05"
    }
}

/// Watches a service's database: a probe (`SELECT 1`) every `interval` (every half second while
/// it fails), and a report from any request that meets the database unavailable. While the database fails, every service of the
/// process reports NOT_SERVING, so load balancers and the gateway's `/health` see it; when it
/// answers again they report SERVING, unless the process is shutting down.
public final class DatabaseAvailability: Sendable {
    public let name: String
    private let database: ServiceDatabase
    private let health: HealthStatus
    private let interval: Duration
    private let probeTimeout: Duration
    private let logger: Logger
    private let state = Mutex(State())

    private struct State {
        var available = true
    }

    public init(
        name: String, database: ServiceDatabase, health: HealthStatus, interval: Duration = .seconds(2),
        probeTimeout: Duration = .seconds(2), logger: Logger
    ) {
        self.name = name
        self.database = database
        self.health = health
        self.interval = interval
        self.probeTimeout = probeTimeout
        self.logger = logger
    }

    public var isAvailable: Bool { state.withLock { $0.available } }

    /// A request met an unavailable database: report it now; the probe tells when it is back.
    public func reportFailure(_ error: any Error) {
        record(available: false, detail: "\(error)")
    }

    /// The error a client should see for `error` met on this database, or nil if it is not an
    /// availability problem.
    public func unavailableError(for error: any Error) -> DomainError? {
        guard DatabaseFailure.isUnavailable(error) else { return nil }
        reportFailure(error)
        return DomainError(.unavailable, "the \(name) is unavailable; try again shortly", reason: ErrorReason.databaseUnavailable.rawValue, retryAfterSeconds: 2)
    }

    /// Probes until the task is cancelled: every `interval` while the database answers, every
    /// half second while it does not.
    public func run() async {
        while !Task.isCancelled {
            await probe()
            do {
                try await Task.sleep(for: isAvailable ? interval : .milliseconds(500))
            } catch {
                return
            }
        }
    }

    func probe() async {
        do {
            try await withTimeLimit(probeTimeout) { [database] in try await database.ping() }
            record(available: true, detail: nil)
        } catch is CancellationError {
            return
        } catch {
            record(available: false, detail: "\(error)")
        }
    }

    private func record(available: Bool, detail: String?) {
        let changed = state.withLock { state in
            defer { state.available = available }
            return state.available != available
        }
        guard changed else { return }
        if available {
            logger.notice("\(name) is available again; serving")
            health.setAvailable(true)
        } else {
            logger.error("\(name) is unavailable; reporting NOT_SERVING until it answers", metadata: ["error": "\(detail ?? "-")"])
            health.setAvailable(false)
        }
    }
}

