import CoreMetrics
import GRPCCore
import GRPCNIOTransportCore
import Logging
import Synchronization

/// Takes failing instances of one service out of a client's rotation (the circuit breaking the
/// original system planned; Envoy's outlier detection does the same). An instance is ejected
///  - at once while its gRPC health says it is not serving (or its health stream broke: a frozen
///    process stops answering keepalive pings), and back when it serves again;
///  - after `consecutiveFailures` calls in a row ended UNAVAILABLE or past this side's deadline, for
///    `baseEjection` doubled at each ejection that follows without a success between them, at
///    most `maxEjection`.
/// Never every instance: when all would be out, all stay in (better a call that may fail than a
/// call that cannot be made).
public final class OutlierEjection: ClientCallObserver {
    public struct Policy: Sendable, Equatable {
        public var consecutiveFailures: Int
        public var baseEjection: Duration
        public var maxEjection: Duration

        public init(consecutiveFailures: Int = 3, baseEjection: Duration = .seconds(5), maxEjection: Duration = .seconds(60)) {
            self.consecutiveFailures = max(1, consecutiveFailures)
            self.baseEjection = baseEjection
            self.maxEjection = max(baseEjection, maxEjection)
        }
    }

    private struct Instance {
        var consecutiveFailures = 0
        var ejections = 0
        var ejectedUntil: ContinuousClock.Instant?
        var unhealthy = false
    }

    private struct State {
        var instances: [String: Instance] = [:]
    }

    public let service: String
    public let policy: Policy
    private let state = Mutex(State())
    private let changeSignal = ChangeSignal()
    private let logger: Logger
    private let ejectionCount: MetricHandles<String, Counter>
    /// The time ejections are measured in (a manual clock in tests).
    private let now: @Sendable () -> ContinuousClock.Instant

    public init(
        service: String, policy: Policy = Policy(), telemetry: Telemetry? = nil, logger: Logger,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) {
        self.service = service
        self.policy = policy
        self.logger = logger
        self.now = now
        let factory = (telemetry ?? .disabled(component: service)).metrics
        ejectionCount = MetricHandles { reason in
            Counter(label: "aisaas_service_instance_ejections_total", dimensions: [("service", service), ("reason", reason)], factory: factory)
        }
    }

    public func callEnded(method: MethodDescriptor, peer: String, code: RPCError.Code?, answered: Bool, started: ContinuousClock.Instant) {
        recordCall(address: TelemetryClientInterceptor.instance(peer), code: code, answered: answered)
    }

    /// `address` as the health monitor names it (`host:port`). A DEADLINE_EXCEEDED the instance
    /// answered itself (the AI service when a provider is slow) shows it alive; one this side's
    /// deadline gave counts against it, as it may have stopped answering.
    public func recordCall(address: String, code: RPCError.Code?, answered: Bool = false) {
        let failed = code == .unavailable || (code == .deadlineExceeded && !answered)
        var ejectedFor: Duration?
        state.withLock { state in
            var instance = state.instances[address] ?? Instance()
            if failed {
                instance.consecutiveFailures += 1
                let now = self.now()
                let alreadyOut = instance.ejectedUntil.map { $0 > now } ?? false
                if instance.consecutiveFailures >= policy.consecutiveFailures, !alreadyOut {
                    let factor = 1 << min(instance.ejections, 20)
                    let duration = min(policy.baseEjection * factor, policy.maxEjection)
                    instance.ejectedUntil = now + duration
                    instance.ejections += 1
                    instance.consecutiveFailures = 0
                    ejectedFor = duration
                }
            } else {
                // Any answer from the instance, an error included, shows it alive.
                instance.consecutiveFailures = 0
                if instance.ejectedUntil.map({ $0 <= self.now() }) ?? true { instance.ejections = 0 }
            }
            state.instances[address] = instance
        }
        if let ejectedFor {
            ejectionCount["failures"].increment()
            logger.warning("instance ejected", metadata: ["service": "\(service)", "address": "\(address)", "for": "\(ejectedFor)"])
            changed()
            // Back in rotation when the time is up: the client's set is pushed again then.
            Task { [weak self] in
                try? await Task.sleep(for: ejectedFor)
                self?.changed()
            }
        }
    }

    /// What the instance's health says (from `InstanceHealthMonitor`).
    public func recordHealth(address: String, serving: Bool) {
        let changedNow = state.withLock { state in
            var instance = state.instances[address] ?? Instance()
            defer { state.instances[address] = instance }
            guard instance.unhealthy == serving else { return false }
            instance.unhealthy = !serving
            return true
        }
        guard changedNow else { return }
        if !serving {
            ejectionCount["health"].increment()
            logger.notice("instance ejected: not serving", metadata: ["service": "\(service)", "address": "\(address)"])
        }
        changed()
    }

    /// Drops what is known of an instance that left the set, so that instances coming and going
    /// (pods rescheduled to new addresses) do not accumulate.
    public func forget(address: String) {
        _ = state.withLock { $0.instances.removeValue(forKey: address) }
    }

    public func isEjected(_ address: String) -> Bool {
        let now = self.now()
        return state.withLock { state in
            guard let instance = state.instances[address] else { return false }
            return instance.unhealthy || (instance.ejectedUntil.map { $0 > now } ?? false)
        }
    }

    /// The addresses that take calls now.
    public func filter(_ addresses: [GRPCNIOTransportCore.SocketAddress]) -> [GRPCNIOTransportCore.SocketAddress] {
        let kept = addresses.filter { !isEjected(InstanceHealthMonitor.label($0)) }
        return kept.isEmpty ? addresses : kept
    }

    /// A signal at every ejection and return.
    public func changes() -> AsyncStream<Void> {
        changeSignal.stream()
    }

    private func changed() {
        changeSignal.signal()
    }
}

extension ServiceEndpoints {
    /// These endpoints without the instances `ejection` has taken out, pushed to the client at
    /// every change of either (a fixed list is looked up again every `refresh`).
    public func ejecting(_ ejection: OutlierEjection, refresh: Duration = .seconds(30)) -> ServiceEndpoints {
        let base = self
        let sourceChanges = changes
        return ServiceEndpoints(
            name: name, describedAs: description,
            changes: {
                AsyncStream(bufferingPolicy: .bufferingNewest(1)) { continuation in
                    let task = Task {
                        await withDiscardingTaskGroup { group in
                            group.addTask {
                                if let sourceChanges {
                                    for await _ in sourceChanges() { continuation.yield() }
                                } else {
                                    while !Task.isCancelled {
                                        continuation.yield()
                                        try? await Task.sleep(for: refresh)
                                    }
                                }
                            }
                            group.addTask { for await _ in ejection.changes() { continuation.yield() } }
                        }
                        continuation.finish()
                    }
                    continuation.onTermination = { _ in task.cancel() }
                }
            }
        ) {
            ejection.filter(try await base.addresses())
        }
    }
}
