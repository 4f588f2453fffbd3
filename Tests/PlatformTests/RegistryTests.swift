import AsyncHTTPClient
import Foundation
import Glibc
import Logging
import GRPCNIOTransportCore
import ServiceLifecycle
import Synchronization
import Testing
import TestSupport
@testable import Platform

@Suite("service registry on etcd", .serialized)
struct RegistryTests {
    static func quietLogger() -> Logger {
        var logger = Logger(label: "registry-test")
        logger.logLevel = .critical
        return logger
    }

    @Test("the etcd client puts, reads a prefix, watches changes and lets a lease expire")
    func etcdClient() async throws {
        let etcd = try EtcdServer()
        defer { etcd.remove() }
        try await etcd.start()
        let client = EtcdClient(endpoints: ["http://127.0.0.1:1", etcd.endpoint])  // the first is down: the next is tried
        try await client.put(key: "/t/services/a/1", value: "one", lease: nil)
        try await client.put(key: "/t/servicesX", value: "outside", lease: nil)
        let (entries, revision) = try await client.range(prefix: "/t/services/")
        #expect(entries == [RegistryEntry(key: "/t/services/a/1", value: "one")])
        #expect(revision > 0)

        let watch = Task {
            var seen: [RegistryChange] = []
            for try await changes in client.watch(prefix: "/t/services/", after: revision) {
                seen += changes
                if seen.count >= 3 { break }
            }
            return seen
        }
        try await Task.sleep(for: .milliseconds(300))
        let lease = try await client.grantLease(ttl: 2)
        try await client.put(key: "/t/services/a/2", value: "two", lease: lease)
        try await client.delete(key: "/t/services/a/1")
        #expect(try await client.keepAlive(lease: lease) > 0)
        // Not renewed any more: the key goes with the lease.
        let seen = try await watch.value
        #expect(seen == [.put(RegistryEntry(key: "/t/services/a/2", value: "two")), .delete(key: "/t/services/a/1"), .delete(key: "/t/services/a/2")])
        #expect(try await client.keepAlive(lease: lease) == 0)
    }

    @Test("an instance registers, a watcher sees it within a second, and it leaves as draining then gone on shutdown")
    func registrationAndWatch() async throws {
        let etcd = try EtcdServer()
        defer { etcd.remove() }
        try await etcd.start()
        let store = EtcdClient(endpoints: [etcd.endpoint])
        let watcher = RegistryWatcher(store: store, prefix: "/p", logger: Self.quietLogger())
        let registration = ServiceRegistration(store: store, prefix: "/p", service: "user-service", id: "a", ttl: 3, logger: Self.quietLogger()) {
            "10.1.2.3:9101"
        }
        let watching = Task { try await watcher.run() }
        defer { watching.cancel() }
        let group = ServiceGroup(configuration: .init(services: [.init(service: registration)], logger: Self.quietLogger()))
        let running = Task { try await group.run() }

        try await Self.waitFor("the instance listed") { watcher.serving("user-service").map(\.address) == ["10.1.2.3:9101"] }
        #expect(watcher.status.reachable)
        let (entries, _) = try await store.range(prefix: "/p/services/")
        #expect(entries.count == 1)
        await group.triggerGracefulShutdown()
        try await running.value
        try await Self.waitFor("the instance gone") { watcher.serving("user-service").isEmpty && watcher.all.isEmpty }
        #expect(try await store.range(prefix: "/p/services/").entries.isEmpty, "the key is deleted, not left to expire")
    }

    @Test("a killed instance's lease expires; an etcd outage keeps the last set and the watcher recovers by itself")
    func expiryAndOutage() async throws {
        let etcd = try EtcdServer()
        defer { etcd.remove() }
        try await etcd.start()
        let store = EtcdClient(endpoints: [etcd.endpoint])
        let watcher = RegistryWatcher(store: store, prefix: "/p", logger: Self.quietLogger())
        let watching = Task { try await watcher.run() }
        defer { watching.cancel() }
        // One instance that keeps its lease, one whose process "died" (nobody renews its lease).
        // The live one's lease is long: a machine loaded enough to delay its renewals past a
        // short one would make it expire too, and the outage would find it gone.
        let registration = ServiceRegistration(store: store, prefix: "/p", service: "ai-service", id: "alive", ttl: 30, logger: Self.quietLogger()) {
            "10.0.0.1:9102"
        }
        let keeping = Task { try await registration.run() }
        defer { keeping.cancel() }
        let deadLease = try await store.grantLease(ttl: 2)
        try await store.put(
            key: "/p/services/ai-service/dead",
            value: RegisteredInstance(service: "ai-service", id: "dead", address: "10.0.0.2:9102", state: .serving).value, lease: deadLease
        )
        try await Self.waitFor("both listed") { watcher.serving("ai-service").count == 2 }
        try await Self.waitFor("the dead one dropped when its lease expires", timeout: .seconds(10)) {
            watcher.serving("ai-service").map(\.id) == ["alive"]
        }

        etcd.stop()
        try await Self.waitFor("the outage seen") { !watcher.status.reachable }
        #expect(watcher.serving("ai-service").map(\.id) == ["alive"], "the last known set stays")
        try await etcd.start()
        try await Self.waitFor("recovered", timeout: .seconds(15)) { watcher.status.reachable }
        try await Self.waitFor("still registered after the outage", timeout: .seconds(10)) { watcher.serving("ai-service").map(\.id) == ["alive"] }
    }

    @Test("a member without a leader (503) is passed over for the next, for calls and watches; a refused request (4xx) is not retried")
    func memberInTroubleIsPassedOver() async throws {
        let etcd = try EtcdServer()
        defer { etcd.remove() }
        try await etcd.start()
        let noLeader = try await FixedAnswerServer.start(status: 503, json: #"{"error":"etcdserver: no leader","code":14,"message":"etcdserver: no leader"}"#)
        let client = EtcdClient(endpoints: [noLeader.endpoint, etcd.endpoint])
        try await client.put(key: "/m/services/a/1", value: "one", lease: nil)
        #expect(noLeader.requests == 1)
        // The member that answered is preferred from then on.
        let (entries, revision) = try await client.range(prefix: "/m/services/")
        #expect(entries.map(\.value) == ["one"])
        #expect(noLeader.requests == 1)

        // A watch starts on a member that answers too.
        let watchingClient = EtcdClient(endpoints: [noLeader.endpoint, etcd.endpoint])
        let watch = Task {
            for try await changes in watchingClient.watch(prefix: "/m/services/", after: revision) { return changes }
            return []
        }
        try await Task.sleep(for: .milliseconds(300))
        try await client.put(key: "/m/services/a/2", value: "two", lease: nil)
        #expect(try await watch.value == [.put(RegistryEntry(key: "/m/services/a/2", value: "two"))])
        #expect(noLeader.requests == 2)
        await noLeader.stop()

        let refusing = try await FixedAnswerServer.start(status: 400, json: #"{"error":"etcdserver: request is too large","code":3,"message":"etcdserver: request is too large"}"#)
        let strict = EtcdClient(endpoints: [refusing.endpoint, etcd.endpoint])
        await #expect(throws: EtcdError.self) { try await strict.put(key: "/m/services/a/3", value: "three", lease: nil) }
        #expect(try await client.range(prefix: "/m/services/").entries.count == 2, "not written through the other member")
        await refusing.stop()
    }

    @Test("a watch with no change for longer than the HTTP client's read timeout goes on, missing nothing")
    func idleWatchGoesOn() async throws {
        let etcd = try EtcdServer()
        defer { etcd.remove() }
        try await etcd.start()
        let impatient = HTTPClient(
            eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration(timeout: .init(connect: .seconds(2), read: .milliseconds(700)))
        )
        let client = EtcdClient(endpoints: [etcd.endpoint], http: impatient)
        let (_, revision) = try await client.range(prefix: "/i/services/")
        let watch = Task {
            var seen: [RegistryChange] = []
            for try await changes in client.watch(prefix: "/i/services/", after: revision) {
                seen += changes
                if seen.count >= 2 { break }
            }
            return seen
        }
        try await Task.sleep(for: .seconds(2))  // nearly three read timeouts, idle
        try await client.put(key: "/i/services/a/1", value: "one", lease: nil)
        try await Task.sleep(for: .seconds(2))
        try await client.put(key: "/i/services/a/2", value: "two", lease: nil)
        let seen = await watch.result
        try await impatient.shutdown()
        #expect(try seen.get() == [
            .put(RegistryEntry(key: "/i/services/a/1", value: "one")), .put(RegistryEntry(key: "/i/services/a/2", value: "two")),
        ])
    }

    @Test("a member that takes the connection and never answers a watch is an error, not an idle watch")
    func silentMemberFailsTheWatch() async throws {
        // Listening, never accepting: connections complete in the kernel, nothing is ever read.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        #expect(listen(fd, 16) == 0)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let port = Int(UInt16(bigEndian: address.sin_port))
        let impatient = HTTPClient(
            eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration(timeout: .init(connect: .seconds(2), read: .milliseconds(500)))
        )
        let client = EtcdClient(endpoints: ["http://127.0.0.1:\(port)"], http: impatient)
        let watch = Task {
            for try await _ in client.watch(prefix: "/s/services/", after: 0) {}
        }
        let ended = Task {
            try await Task.sleep(for: .seconds(10))
            watch.cancel()
        }
        let result = await watch.result
        ended.cancel()
        try await impatient.shutdown()
        guard case .failure(let error) = result else {
            Issue.record("the watch ended without an error")
            return
        }
        #expect(!(error is CancellationError), "it waited in silence until cancelled: \(error)")
    }

    @Test("registry endpoints follow the watcher; DNS endpoints list every address of a name")
    func endpointSources() async throws {
        let etcd = try EtcdServer()
        defer { etcd.remove() }
        try await etcd.start()
        let store = EtcdClient(endpoints: [etcd.endpoint])
        let watcher = RegistryWatcher(store: store, prefix: "/e", logger: Self.quietLogger())
        let watching = Task { try await watcher.run() }
        defer { watching.cancel() }
        let endpoints = ServiceEndpoints.registry(name: "user-service", watcher: watcher)
        for (id, state) in [("1", RegisteredInstance.State.serving), ("2", .draining), ("3", .serving)] {
            try await store.put(
                key: "/e/services/user-service/\(id)",
                value: RegisteredInstance(service: "user-service", id: id, address: "127.0.0.\(id):9101", state: state).value, lease: nil
            )
        }
        try await Self.waitFor("two serving") { watcher.serving("user-service").count == 2 }
        #expect(try await endpoints.addresses() == [.ipv4(host: "127.0.0.1", port: 9101), .ipv4(host: "127.0.0.3", port: 9101)])

        let local = try await GRPCNIOTransportCore.SocketAddress.resolvingAll(HostPort(host: "localhost", port: 80))
        #expect(local.contains(.ipv4(host: "127.0.0.1", port: 80)))
        let literal = ServiceEndpoints.dns(name: "x", [HostPort(host: "127.0.0.9", port: 7), HostPort(host: "127.0.0.8", port: 7)], refresh: .seconds(1))
        #expect(try await literal.addresses() == [.ipv4(host: "127.0.0.8", port: 7), .ipv4(host: "127.0.0.9", port: 7)])
    }

    static func waitFor(_ what: String, timeout: Duration = .seconds(5), _ condition: () async -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if await condition() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("timed out waiting: \(what)")
        throw CancellationError()
    }
}

/// A registry whose first put is slow: recorded at once (as etcd applies it), then answered only
/// after a long pause, or when the caller gives up.
private final class SlowPutStore: RegistryStore {
    let puts = Mutex<[String]>([])
    let revoked = Mutex<[Int64]>([])

    func grantLease(ttl: Int) async throws -> Int64 { 7 }
    func keepAlive(lease: Int64) async throws -> Int { 30 }
    func revoke(lease: Int64) async throws { revoked.withLock { $0.append(lease) } }
    func put(key: String, value: String, lease: Int64?) async throws {
        let first = puts.withLock { puts in
            defer { puts.append(key) }
            return puts.isEmpty
        }
        if first { try await Task.sleep(for: .seconds(30)) }
    }
    func delete(key: String) async throws {}
    func write(_ changes: [String: String?]) async throws {}
    func range(prefix: String) async throws -> (entries: [RegistryEntry], revision: Int64) { ([], 0) }
    func watch(prefix: String, after revision: Int64) -> AsyncThrowingStream<[RegistryChange], any Error> {
        AsyncThrowingStream { _ in }
    }
}

@Suite("service registration")
struct ServiceRegistrationTests {
    @Test("a shutdown while the registering put is in flight revokes the lease it was made under")
    func shutdownDuringThePut() async throws {
        let store = SlowPutStore()
        let registration = ServiceRegistration(store: store, prefix: "/p", service: "user-service", id: "a", ttl: 30, logger: RegistryTests.quietLogger()) {
            "10.0.0.1:9101"
        }
        let group = ServiceGroup(configuration: .init(services: [.init(service: registration)], logger: RegistryTests.quietLogger()))
        let running = Task { try await group.run() }
        try await RegistryTests.waitFor("the put sent", timeout: .seconds(30)) { !store.puts.withLock { $0.isEmpty } }
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(store.revoked.withLock { $0 } == [7])
    }
}
