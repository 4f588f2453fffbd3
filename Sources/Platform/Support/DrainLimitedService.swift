import Logging
import ServiceLifecycle

/// A server that drains on graceful shutdown, for at most `drainTime`: then the work still in
/// flight is cancelled and the service ends, so that the services after it (the database) still
/// shut down in order and the process exits.
public struct DrainLimitedService: Service {
    private let base: any Service
    private let drainTime: Duration
    private let name: String
    private let logger: Logger

    public init(_ base: any Service, drainTime: Duration, name: String, logger: Logger) {
        self.base = base
        self.drainTime = drainTime
        self.name = name
        self.logger = logger
    }

    private struct DrainTimePassed: Error {}

    public func run() async throws {
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await base.run() }
                group.addTask {
                    // Waits (cancellably) for the shutdown to begin, then for the drain time.
                    try await gracefulShutdown()
                    try await Task.sleep(for: drainTime)
                    throw DrainTimePassed()
                }
                try await group.next()
                group.cancelAll()
            }
        } catch is DrainTimePassed {
            logger.warning("\(name) did not drain within \(drainTime) (SHUTDOWN_DRAIN_SECONDS): work still in flight was cut short")
        }
    }
}
