import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Keeps one service instance registered while it runs: its key
/// `<prefix>/services/<service>/<id>` under a lease of `ttl` seconds, renewed every third of it.
/// A lease that expired (etcd was unreachable for longer than the TTL) is granted anew and the
/// key put again. On shutdown the instance first says it is draining, so that callers stop
/// choosing it, then deletes its key and revokes its lease. A process that dies without that
/// is dropped when its lease expires.
///
/// List it after the gRPC server in the process's services: a `ServiceGroup` stops services in
/// reverse order, so the instance leaves the registry before its server starts draining.
public final class ServiceRegistration: Service, Sendable {
    private let store: any RegistryStore
    private let key: String
    private let instance: Mutex<RegisteredInstance>
    private let ttl: Int
    private let logger: Logger
    /// Where the server listens, once it does: the address registered when none was configured.
    private let address: @Sendable () async throws -> String
    private let registered = Atomic<Bool>(false)

    public init(
        store: any RegistryStore, prefix: String, service: String, id: String, ttl: Int, logger: Logger,
        address: @escaping @Sendable () async throws -> String
    ) {
        self.store = store
        self.key = RegisteredInstance.key(prefix: prefix, service: service, id: id)
        self.instance = Mutex(RegisteredInstance(service: service, id: id, address: "", state: .serving, started: Date()))
        self.ttl = ttl
        self.logger = logger
        self.address = address
    }

    /// Whether the key is in the registry now (as far as this instance knows).
    public var isRegistered: Bool { registered.load(ordering: .relaxed) }

    public func run() async throws {
        let address = try await address()
        instance.withLock { $0.address = address }
        await cancelWhenGracefulShutdown { await self.keepRegistered() }
        // Leaving is not cut short by the group's cancellation: it is a few quick calls.
        await Task.detached { await self.leave() }.value
    }

    private func keepRegistered() async {
        var backoff = Duration.milliseconds(200)
        while !Task.isCancelled {
            do {
                let lease = try await store.grantLease(ttl: ttl)
                // Known before the put: a shutdown while it is in flight (the put may still land)
                // revokes the lease, and with it the key, instead of leaving it until it expires.
                currentLease.withLock { $0 = lease }
                try await store.put(key: key, value: instance.withLock { $0.value }, lease: lease)
                registered.store(true, ordering: .relaxed)
                logger.info("registered", metadata: ["key": "\(key)", "address": "\(instance.withLock { $0.address })", "ttl": "\(ttl)"])
                backoff = .milliseconds(200)
                while !Task.isCancelled {
                    try await Task.sleep(for: .seconds(Double(ttl) / 3))
                    guard try await store.keepAlive(lease: lease) > 0 else {
                        logger.warning("registration lease expired; registering again", metadata: ["key": "\(key)"])
                        break
                    }
                }
            } catch {
                if Task.isCancelled { return }
                registered.store(false, ordering: .relaxed)
                logger.warning("registry unreachable; retrying", metadata: ["key": "\(key)", "error": "\(error)"])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(Double(max(1, ttl)) / 3))
            }
        }
    }

    private let currentLease = Mutex<Int64?>(nil)

    private func leave() async {
        guard let lease = currentLease.withLock({ $0 }) else { return }
        let draining = instance.withLock { instance in
            instance.state = .draining
            return instance.value
        }
        do {
            try await store.put(key: key, value: draining, lease: lease)
            try await store.delete(key: key)
            try await store.revoke(lease: lease)
            logger.info("left the registry", metadata: ["key": "\(key)"])
        } catch {
            logger.warning("could not leave the registry; the lease will expire", metadata: ["key": "\(key)", "error": "\(error)"])
        }
        registered.store(false, ordering: .relaxed)
    }
}
