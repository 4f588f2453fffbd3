import AISaaSProtos
import GRPCCore
import Synchronization

/// The serving status of each service of a process, as `grpc.health.v1.Health` reports it.
/// The empty service name stands for the process as a whole.
public final class HealthStatus: Sendable {
    public typealias Status = Grpc_Health_V1_HealthCheckResponse.ServingStatus

    private struct State {
        var statuses: [String: Status] = [:]
        /// Set once shutdown begins: nothing turns a service back to SERVING after that.
        var shuttingDown = false
        var watchers: [Int: (service: String, continuation: AsyncStream<Status>.Continuation)] = [:]
        var nextWatcher = 0
    }

    private let state = Mutex(State())

    /// SERVING from start-up until shutdown begins, whatever the database does: what a liveness
    /// probe asks (Kubernetes' `grpc.service`), so that an outage of the database, which turns
    /// every other service NOT_SERVING, does not get the process restarted (it recovers by itself,
    /// and a new one could not start without the database).
    public static let livenessService = "aisaas.liveness"

    public init() {}

    public func set(_ status: Status, for service: String = "") {
        let watchers: [AsyncStream<Status>.Continuation] = state.withLock { state in
            if state.shuttingDown && status == .serving { return [] }
            state.statuses[service] = status
            return state.watchers.values.filter { $0.service == service }.map(\.continuation)
        }
        for watcher in watchers { watcher.yield(status) }
    }

    public func status(of service: String) -> Status? {
        state.withLock { $0.statuses[service] }
    }

    /// Marks every service as not serving, as a process does when it begins to shut down.
    public func markAllNotServing() {
        let services = state.withLock { state in
            state.shuttingDown = true
            return Array(state.statuses.keys)
        }
        for service in services { set(.notServing, for: service) }
        // Watch streams end with NOT_SERVING as their last word: a server drains its calls in
        // flight, and a watch would otherwise be one that never finishes.
        let watchers = state.withLock { state in
            defer { state.watchers = [:] }
            return state.watchers.values.map(\.continuation)
        }
        for watcher in watchers { watcher.finish() }
    }

    /// Every service serving or not, as what they depend on (the database) comes and goes;
    /// ignored once the process is shutting down.
    public func setAvailable(_ available: Bool) {
        let services = state.withLock { Array($0.statuses.keys) }
        for service in services where service != Self.livenessService { set(available ? .serving : .notServing, for: service) }
    }

    public var isShuttingDown: Bool { state.withLock { $0.shuttingDown } }

    func watch(_ service: String) -> AsyncStream<Status> {
        let (stream, continuation) = AsyncStream<Status>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = state.withLock { state in
            let id = state.nextWatcher
            state.nextWatcher += 1
            continuation.yield(state.statuses[service] ?? .serviceUnknown)
            if state.shuttingDown {
                continuation.finish()
            } else {
                state.watchers[id] = (service, continuation)
            }
            return id
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.watchers.removeValue(forKey: id) }
        }
        return stream
    }
}

/// `grpc.health.v1.Health` over a `HealthStatus`.
public struct HealthService: Grpc_Health_V1_Health.SimpleServiceProtocol {
    public let status: HealthStatus

    public init(status: HealthStatus) {
        self.status = status
    }

    public func check(
        request: Grpc_Health_V1_HealthCheckRequest,
        context: ServerContext
    ) async throws -> Grpc_Health_V1_HealthCheckResponse {
        guard let current = status.status(of: request.service) else {
            throw RPCError(code: .notFound, message: "unknown service \(request.service.quotedForMessage)")
        }
        return .with { $0.status = current }
    }

    public func watch(
        request: Grpc_Health_V1_HealthCheckRequest,
        response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>,
        context: ServerContext
    ) async throws {
        var last: HealthStatus.Status?
        for await current in status.watch(request.service) where current != last {
            last = current
            try await response.write(.with { $0.status = current })
        }
    }
}
