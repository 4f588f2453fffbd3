import AISaaSProtos
import GRPCCore
import GRPCNIOTransportCore
import GRPCNIOTransportHTTP2
import Logging
import Synchronization
import Testing
@testable import Platform

@Suite("instance health monitor")
struct InstanceHealthMonitorTests {
    /// Waits up to `seconds` for `condition`.
    private func eventually(_ seconds: Int = 15, _ condition: () -> Bool) async throws -> Bool {
        let end = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < end {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return condition()
    }

    @Test("an instance that leaves the set is gone from health and from ejection, not back as failing", .timeLimit(.minutes(1)))
    func instanceLeavingTheSet() async throws {
        let statuses = [HealthStatus(), HealthStatus()]
        for status in statuses { status.set(.serving) }
        let servers = statuses.map { status in
            GRPCServer(
                transport: HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext, config: .platform()),
                services: [HealthService(status: status)]
            )
        }
        try await withThrowingDiscardingTaskGroup { group in
            for server in servers { group.addTask { try await server.serve() } }
            var addresses: [GRPCNIOTransportCore.SocketAddress] = []
            for server in servers {
                let address = try #require(try await server.listeningAddress?.ipv4)
                addresses.append(.ipv4(host: address.host, port: address.port))
            }
            let labels = addresses.map(InstanceHealthMonitor.label)
            // nil: the lookup fails.
            let current = Mutex<[GRPCNIOTransportCore.SocketAddress]?>(addresses)
            let changed = ChangeSignal()
            let endpoints = ServiceEndpoints(name: "user-service", describedAs: "test", changes: { changed.stream() }) {
                guard let addresses = current.withLock({ $0 }) else { throw RPCError(code: .unavailable, message: "lookup failed") }
                return addresses
            }
            let ejection = OutlierEjection(service: "user-service", logger: Logger(label: "test"))
            let monitor = InstanceHealthMonitor(endpoints: endpoints, refreshInterval: .seconds(60), ejection: ejection, logger: Logger(label: "test"))
            let watching = Task { try await monitor.run() }

            #expect(try await eventually { monitor.snapshot.map(\.address) == labels.sorted() && monitor.snapshot.allSatisfy(\.serving) })
            // The second instance stops serving (a drain), then leaves the registry.
            statuses[1].set(.notServing)
            #expect(try await eventually { ejection.isEjected(labels[1]) })
            current.withLock { $0 = [addresses[0]] }
            changed.signal()
            #expect(try await eventually { monitor.snapshot.map(\.address) == [labels[0]] })
            // Its cancelled watch ends after it left: that end must not bring it back.
            try await Task.sleep(for: .seconds(1))
            #expect(monitor.snapshot.map(\.address) == [labels[0]], "\(monitor.snapshot)")
            #expect(monitor.snapshot.allSatisfy { $0.serving })
            #expect(!ejection.isEjected(labels[1]))

            // A failed lookup keeps the instances watched.
            current.withLock { $0 = nil }
            changed.signal()
            try await Task.sleep(for: .milliseconds(500))
            #expect(monitor.snapshot.map(\.address) == [labels[0]])

            watching.cancel()
            _ = await watching.result
            for status in statuses { status.markAllNotServing() }
            for server in servers { server.beginGracefulShutdown() }
        }
    }
}
