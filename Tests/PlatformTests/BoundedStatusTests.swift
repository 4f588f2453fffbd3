import AISaaSProtos
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import Platform
import Testing

/// A health service whose `Check` of service "slow" answers after a pause, and whose other
/// checks fail with a message (and a trailer) that repeat the whole, enormous service name, as a
/// careless handler would echo an identifier.
private struct EchoingHealthService: Grpc_Health_V1_Health.SimpleServiceProtocol {
    func check(request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext) async throws -> Grpc_Health_V1_HealthCheckResponse {
        if request.service == "slow" {
            try await Task.sleep(for: .milliseconds(800))
            return .with { $0.status = .serving }
        }
        if request.service.hasPrefix("rpc") {
            var metadata: Metadata = [:]
            metadata.addString(request.service, forKey: "x-echo")
            throw RPCError(code: .notFound, message: "no service '\(request.service)'", metadata: metadata)
        }
        throw DomainError(
            .notFound, "no service '\(request.service)'",
            violations: (0..<500).map { FieldViolation(property: "field\($0)-\(request.service)", constraints: [request.service]) }
        )
    }

    func watch(request: Grpc_Health_V1_HealthCheckRequest, response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>, context: ServerContext) async throws {}
}

@Suite("bounded statuses")
struct BoundedStatusTests {
    @Test("a status echoing 20,000 characters is cut short, and other calls on the same connection go on")
    func oneCallsHugeErrorDoesNotResetTheConnection() async throws {
        let server = GRPCServer(
            transport: HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext, config: .platform()),
            services: [EchoingHealthService()],
            interceptors: [RequestScopeServerInterceptor(application: "echo-service", logger: Logger(label: "test"))]
        )
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            let address = try #require(try await server.listeningAddress?.ipv4)
            let client = try ServiceClientFactory.make(.fixed(name: "echo", [HostPort(host: address.host, port: address.port)]))
            group.addTask { try await client.runConnections() }
            let health = Grpc_Health_V1_Health.Client(wrapping: client)
            _ = try await retryingWhenUnavailable(attempts: 20) { try await health.check(.with { $0.service = "slow" }) }

            let huge = String(repeating: "x", count: 20_000)
            try await withThrowingTaskGroup(of: Void.self) { calls in
                for _ in 0..<8 {
                    calls.addTask {
                        let answer = try await health.check(.with { $0.service = "slow" })
                        #expect(answer.status == .serving)
                    }
                }
                try await Task.sleep(for: .milliseconds(100))
                for prefix in ["rpc", "domain"] {
                    do {
                        _ = try await health.check(.with { $0.service = prefix + huge })
                        Issue.record("answered")
                    } catch let error as RPCError {
                        #expect(error.code == .notFound, "\(error)")
                        #expect(error.message.utf8.count <= RPCError.maxMessageBytes)
                        for (_, value) in error.metadata {
                            if case .string(let text) = value { #expect(text.utf8.count <= RPCError.maxTrailerValueBytes) }
                        }
                    }
                }
                try await calls.waitForAll()
            }
            client.beginGracefulShutdown()
            server.beginGracefulShutdown()
        }
    }

    @Test func boundedTextCutsAtCharactersAndHidesControls() {
        #expect("abc".bounded(toScalars: 5) == "abc")
        #expect("abcdef".bounded(toScalars: 3) == "abc…")
        #expect("a\nb\u{1B}c".bounded() == "a?b?c")
        #expect("ééé".truncated(toUTF8Bytes: 5) == "é…")
        #expect("short".truncated(toUTF8Bytes: 100) == "short")
        #expect(String(repeating: "x", count: 100).quotedForMessage.count == 67)
    }
}
