import AISaaSProtos
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import Platform
import Testing
import TestSupport

@Suite("gRPC service process")
struct GRPCServiceProcessTests {
    /// A service listens on what its HOST setting names: an IPv4 or IPv6 literal or a host name.
    @Test func listensOnAHostName() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let process = try await GRPCServiceProcess.build(
            application: "test-service", listen: .network(HostPort(host: "localhost", port: 0)),
            database: .sqlite(path: directory.path + "/test.sqlite"), migrations: [],
            logger: Logger(label: "test")
        ) { _ in [] }
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await process.server.serve() }
            let listening = try await process.listeningAddress()
            let port = try #require(listening.ipv4?.port ?? listening.ipv6?.port)
            let client = try ServiceClientFactory.make(.fixed(name: "test-service", [HostPort(host: "localhost", port: port)]))
            group.addTask { try await client.runConnections() }
            let answer = try await Grpc_Health_V1_Health.Client(wrapping: client).check(.with { $0.service = "" })
            #expect(answer.status == .serving)
            client.beginGracefulShutdown()
            process.server.beginGracefulShutdown()
        }
        await process.database.shutdown()
    }

    @Test func anUnresolvableHostIsAConfigurationErrorNamingTheService() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        do {
            _ = try await GRPCServiceProcess.build(
                application: "test-service", listen: .network(HostPort(host: "no-such-host.invalid", port: 0)),
                database: .sqlite(path: directory.path + "/test.sqlite"), migrations: [],
                logger: Logger(label: "test")
            ) { _ in [] }
            Issue.record("expected a configuration error")
        } catch let error as ConfigurationError {
            #expect(error.problems.count == 1)
            #expect(error.problems.first?.contains("test-service cannot listen on no-such-host.invalid:0") == true)
        }
    }
}
