import CoreMetrics
import Synchronization

/// How many of a database's operations hold a connection right now. A statement inside a
/// transaction shares the transaction's connection: it is measured with `holdsConnection` false.
final class ConnectionUsage: Sendable {
    private let inFlight = Atomic<Int>(0)

    var current: Int { inFlight.load(ordering: .relaxed) }

    func began() { inFlight.add(1, ordering: .relaxed) }
    func ended() { inFlight.subtract(1, ordering: .relaxed) }
}

extension DatabaseInstrumentation {
    /// `db_client_connection_count{state="used"|"idle"}` and
    /// `db_client_connection_pending_requests`, read at each scrape. The drivers' pools do not
    /// publish their state, so these are the service's own view: operations in flight against the
    /// connections it may open (`capacity`), plus callers queued for a connection of the service's
    /// own (`queuedOutsidePool`, SQLite's writer). The pool spreads its connections over event
    /// loops, so a loop's share can run out before the total does: `pending` is a lower bound.
    func reportConnections(capacity: Int, queuedOutsidePool: @escaping @Sendable () -> Int) {
        let factory = telemetry.metrics
        let dimensions = [("db_system_name", system)]
        let used = Gauge(label: "db_client_connection_count", dimensions: dimensions + [("state", "used")], factory: factory)
        let idle = Gauge(label: "db_client_connection_count", dimensions: dimensions + [("state", "idle")], factory: factory)
        let pending = Gauge(label: "db_client_connection_pending_requests", dimensions: dimensions, factory: factory)
        telemetry.beforeScrape.add { [weak usage = self.usage] in
            // A database shut down and released: its hook has nothing more to say.
            guard let usage else { return }
            let inFlight = usage.current
            used.record(min(inFlight, capacity))
            idle.record(max(0, capacity - inFlight))
            pending.record(max(0, inFlight - capacity) + queuedOutsidePool())
        }
    }
}
