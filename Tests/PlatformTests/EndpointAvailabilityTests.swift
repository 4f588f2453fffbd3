import AISaaSProtos
import GRPCCore
import GRPCNIOTransportCore
import GRPCNIOTransportHTTP2
import Synchronization
import Testing
@testable import Platform

@Suite("calls to a pushed set without instances")
struct EndpointAvailabilityTests {
    /// The outcome of `call`, or nil when it has not finished within `seconds`.
    private func outcome<T: Sendable>(within seconds: Int, _ call: @escaping @Sendable () async throws -> T) async -> Result<T, any Error>? {
        let task = Task { try await call() }
        let end = ContinuousClock.now + .seconds(seconds)
        let finished = Mutex(false)
        let watcher = Task {
            _ = await task.result
            finished.withLock { $0 = true }
        }
        while ContinuousClock.now < end, !finished.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(20)) }
        guard finished.withLock({ $0 }) else {
            task.cancel()
            _ = await watcher.value
            return nil
        }
        return await task.result
    }

    /// A health server on loopback, serving, while `body` runs with its address; stopped after.
    private static func withHealthServer(
        _ body: (SocketAddress.IPv4, inout ThrowingDiscardingTaskGroup<any Error>) async throws -> Void
    ) async throws {
        let status = HealthStatus()
        status.set(.serving)
        let server = GRPCServer(
            transport: HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext, config: .platform()),
            services: [HealthService(status: status)]
        )
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            let listening = try #require(try await server.listeningAddress?.ipv4)
            try await body(listening, &group)
            status.markAllNotServing()
            server.beginGracefulShutdown()
        }
    }

    @Test("fail at once, UNAVAILABLE with the reason, and go through once an instance is there", .timeLimit(.minutes(1)))
    func noInstancesFailsFast() async throws {
        try await Self.withHealthServer { listening, group in
            enum Lookup { case fails, empty, instance }
            let lookup = Mutex(Lookup.fails)
            let changed = ChangeSignal()
            let endpoints = ServiceEndpoints(name: "user-service", describedAs: "test", changes: { changed.stream(signalNow: true) }) {
                switch lookup.withLock({ $0 }) {
                case .fails: throw DiscoveryError("user-service.example does not resolve")
                case .empty: return []
                case .instance: return [.ipv4(host: listening.host, port: listening.port)]
                }
            }
            // A deadline far longer than the test waits: only failing fast passes.
            let client = try ServiceClientFactory.make(endpoints, settings: ServiceClientSettings(callTimeout: .seconds(120)))
            group.addTask { try await client.runConnections() }
            let health = Grpc_Health_V1_Health.Client(wrapping: client)

            let unresolved = await outcome(within: 10) { try await health.check(.with { $0.service = "" }) }
            guard case .failure(let error as RPCError)? = unresolved else {
                Issue.record("a call with no instance looked up: \(String(describing: unresolved))")
                return
            }
            #expect(error.code == .unavailable)
            #expect(error.message.contains("user-service") && error.message.contains("does not resolve"), "\(error.message)")

            lookup.withLock { $0 = .empty }
            changed.signal()
            #expect(try await eventually { endpoints.availability.state == .unavailable("no instance is registered") })
            let empty = await outcome(within: 10) { try await health.check(.with { $0.service = "" }) }
            guard case .failure(let emptyError as RPCError)? = empty else {
                Issue.record("a call with no instance registered: \(String(describing: empty))")
                return
            }
            #expect(emptyError.code == .unavailable && emptyError.message.contains("no instance is registered"), "\(emptyError)")

            lookup.withLock { $0 = .instance }
            changed.signal()
            let answer = try await retryingWhenUnavailable(attempts: 50) { try await health.check(.with { $0.service = "" }) }
            #expect(answer.status == .serving)

            // A lookup failing later keeps the instances the client has.
            lookup.withLock { $0 = .fails }
            changed.signal()
            try await Task.sleep(for: .milliseconds(200))
            #expect(endpoints.availability.state == .available)
            #expect(try await health.check(.with { $0.service = "" }).status == .serving)

            client.beginGracefulShutdown()
        }
    }

    private func eventually(_ condition: () -> Bool) async throws -> Bool {
        for _ in 0..<200 {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(25))
        }
        return condition()
    }

    @Test("a set that cannot tell yet (a registry not read once) keeps calls waiting for its first answer", .timeLimit(.minutes(1)))
    func notYetKnownWaits() async throws {
        try await Self.withHealthServer { listening, group in
            let known = Mutex(false)
            let changed = ChangeSignal()
            let endpoints = ServiceEndpoints(name: "user-service", describedAs: "test", changes: { changed.stream(signalNow: true) }) {
                guard known.withLock({ $0 }) else { throw EndpointsNotYetKnown(reason: "the registry has not been read yet") }
                return [.ipv4(host: listening.host, port: listening.port)]
            }
            let client = try ServiceClientFactory.make(endpoints, settings: ServiceClientSettings(callTimeout: .seconds(20)))
            group.addTask { try await client.runConnections() }
            let health = Grpc_Health_V1_Health.Client(wrapping: client)
            let call = Task { try await health.check(.with { $0.service = "" }) }
            try await Task.sleep(for: .milliseconds(300))
            #expect(endpoints.availability.state == .unknown)
            known.withLock { $0 = true }
            changed.signal()
            #expect(try await call.value.status == .serving)
            client.beginGracefulShutdown()
        }
    }
}
