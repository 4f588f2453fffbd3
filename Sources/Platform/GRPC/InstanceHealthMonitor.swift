import AISaaSProtos
import GRPCCore
import GRPCNIOTransportCore
import GRPCNIOTransportHTTP2
import Logging
import ServiceLifecycle
import Synchronization

/// The health of every instance of one service, kept current by a `grpc.health.v1.Health/Watch`
/// stream to each instance on a connection of its own (so that one failing instance is named,
/// not hidden behind load balancing). Reading it costs nothing: `/health` cannot be used to load
/// the services, and a status change (NOT_SERVING while a database is down or a replica drains)
/// is known the moment the instance reports it.
public final class InstanceHealthMonitor: Service, Sendable {
    private enum Source: Sendable {
        /// Instances found again every `refreshInterval`, each watched over a connection of its own.
        case network(ServiceEndpoints, refreshInterval: Duration)
        case inProcess(HealthStatus)
    }

    private let source: Source
    /// The service's name and where its instances come from, as `/health` shows them.
    private let name: String
    private let sourceDescription: String
    private let logger: Logger
    private let state = Mutex(State())
    /// Told each instance's health, so that the client skips those not serving.
    private let ejection: OutlierEjection?

    private struct State {
        var instances: [String: InstanceHealth] = [:]
        /// The watch each instance has now. A watch cancelled when its instance left the set still
        /// reports its end; only reports from the instance's current watch count, or an instance
        /// gone would come back as failing for good.
        var watches: [String: Int] = [:]
        var lastWatch = 0
        var resolveFailure: String?
        var resolvedOnce = false
    }

    public init(endpoints: ServiceEndpoints, refreshInterval: Duration = .seconds(5), ejection: OutlierEjection? = nil, logger: Logger) {
        self.source = .network(endpoints, refreshInterval: refreshInterval)
        self.name = endpoints.name
        self.sourceDescription = endpoints.description
        self.ejection = ejection
        self.logger = logger
    }

    /// A service in this process: its own health, read directly.
    public init(inProcess name: String, health: HealthStatus, logger: Logger) {
        self.source = .inProcess(health)
        self.name = name
        self.sourceDescription = "\(name)(in-process)"
        self.ejection = nil
        self.logger = logger
    }

    /// Every known instance, or one entry saying why there are none.
    public var snapshot: [InstanceHealth] {
        state.withLock { state in
            if let failure = state.resolveFailure, state.instances.isEmpty {
                return [InstanceHealth(service: name, address: sourceDescription, serving: false, detail: failure)]
            }
            if state.instances.isEmpty {
                let detail = state.resolvedOnce ? "no instances" : "CONNECTING"
                return [InstanceHealth(service: name, address: sourceDescription, serving: false, detail: detail)]
            }
            return state.instances.values.sorted { $0.address < $1.address }
        }
    }

    public func run() async throws {
        switch source {
        case .inProcess(let health):
            await cancelWhenGracefulShutdown { await self.watchInProcess(health) }
        case .network(let endpoints, let refreshInterval):
            await cancelWhenGracefulShutdown { await self.watchInstances(of: endpoints, refreshingEvery: refreshInterval) }
        }
    }

    /// Watches every instance `endpoints` names until cancelled, following the set as it changes:
    /// every `refreshInterval`, and at once when the source signals a change (a registry).
    private func watchInstances(of endpoints: ServiceEndpoints, refreshingEvery refreshInterval: Duration) async {
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        await withDiscardingTaskGroup { group in
            group.addTask {
                while !Task.isCancelled {
                    wake.yield()
                    try? await Task.sleep(for: refreshInterval)
                }
            }
            if let changes = endpoints.changes {
                group.addTask { for await _ in changes() { wake.yield() } }
            }
            var watched: [String: Task<Void, Never>] = [:]
            for await _ in wakeups {
                if Task.isCancelled { break }
                // A failed lookup keeps the instances watched, as the client keeps its set.
                guard let current = await self.resolve(endpoints) else { continue }
                for (label, address) in current where watched[label] == nil {
                    let watch = self.state.withLock { state in
                        state.lastWatch += 1
                        state.watches[label] = state.lastWatch
                        return state.lastWatch
                    }
                    let task = Task { await self.watch(address, label: label, watch: watch) }
                    watched[label] = task
                    group.addTask { await task.value }
                }
                for (label, task) in watched where current[label] == nil {
                    task.cancel()
                    watched[label] = nil
                    self.state.withLock { state in
                        state.watches[label] = nil
                        state.instances[label] = nil
                    }
                    self.ejection?.forget(address: label)
                }
            }
            for task in watched.values { task.cancel() }
            group.cancelAll()
        }
    }

    private func resolve(_ endpoints: ServiceEndpoints) async -> [String: GRPCNIOTransportCore.SocketAddress]? {
        do {
            let addresses = try await endpoints.addresses()
            state.withLock { state in
                state.resolveFailure = nil
                state.resolvedOnce = true
            }
            return Dictionary(addresses.map { (Self.label($0), $0) }) { first, _ in first }
        } catch {
            state.withLock { state in
                state.resolveFailure = "cannot resolve: \(error)"
                state.resolvedOnce = true
            }
            return nil
        }
    }

    /// Watches one instance until cancelled, reconnecting after failures.
    private func watch(_ address: GRPCNIOTransportCore.SocketAddress, label: String, watch: Int) async {
        let update = { @Sendable (serving: Bool, detail: String) in
            // Cancelled: the instance left the set, or the monitor stops; neither is its verdict.
            guard !Task.isCancelled else { return }
            self.update(label, serving: serving, detail: detail, watch: watch)
        }
        update(false, "CONNECTING")
        while !Task.isCancelled {
            do {
                let single = ServiceEndpoints(name: name, describedAs: label) { [address] }
                var config = HTTP2ClientTransport.Posix.Config.defaults
                // A frozen instance stops answering pings: its connection, and its watch, fail.
                config.connection.keepalive = .init(time: .seconds(1), timeout: .seconds(1), allowWithoutCalls: true)
                config.backoff = .init(initial: .milliseconds(100), max: .seconds(1), multiplier: 1.6, jitter: 0.2)
                var resolvers = NameResolverRegistry.defaults
                resolvers.registerFactory(ServiceEndpointsResolverFactory())
                let transport = try HTTP2ClientTransport.Posix(
                    target: ServiceEndpointsTarget(single), transportSecurity: .plaintext, config: config, resolverRegistry: resolvers
                )
                try await withGRPCClient(transport: transport) { client in
                    try await self.follow(Grpc_Health_V1_Health.Client(wrapping: client), update: update)
                }
                update(false, "UNAVAILABLE: the health stream ended")
            } catch let error as RPCError {
                update(false, "\(error.code): \(error.message)")
            } catch {
                update(false, "\(error)")
            }
            try? await Task.sleep(for: .milliseconds(300))
        }
    }

    /// Follows the status of the service in this process until cancelled.
    private func watchInProcess(_ health: HealthStatus) async {
        for await status in health.watch("") {
            update("in-process", serving: status == .serving, detail: status.protocolName)
        }
        update("in-process", serving: false, detail: "NOT_SERVING")
    }

    private func follow(
        _ health: Grpc_Health_V1_Health.Client<some ClientTransport>, update: @escaping @Sendable (Bool, String) -> Void
    ) async throws {
        try await health.watch(.with { $0.service = "" }) { response in
            for try await message in response.messages {
                update(message.status == .serving, message.status.protocolName)
            }
        }
    }

    /// What `watch` (nil: the in-process service) saw of the instance `label`; dropped when that
    /// watch is no longer the instance's.
    private func update(_ label: String, serving: Bool, detail: String, watch: Int? = nil) {
        let (current, previous) = state.withLock { state -> (Bool, InstanceHealth?) in
            if let watch, state.watches[label] != watch { return (false, nil) }
            defer { state.instances[label] = InstanceHealth(service: name, address: label, serving: serving, detail: detail) }
            return (true, state.instances[label])
        }
        guard current else { return }
        // CONNECTING at the start of a watch is not a verdict on the instance.
        if detail != "CONNECTING" { ejection?.recordHealth(address: label, serving: serving) }
        if previous?.serving != serving, previous != nil {
            logger.notice("instance health changed", metadata: ["service": "\(name)", "address": "\(label)", "status": "\(detail)"])
        }
    }

    static func label(_ address: GRPCNIOTransportCore.SocketAddress) -> String {
        address.ipv4.map { "\($0.host):\($0.port)" } ?? address.ipv6.map { "[\($0.host)]:\($0.port)" } ?? "\(address)"
    }
}
