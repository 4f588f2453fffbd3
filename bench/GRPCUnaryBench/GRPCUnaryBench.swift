import AISaaSProtos
import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import NIOCore
import NIOPosix
import Platform
import Synchronization

/// Measures one unary gRPC call over loopback in one process (server and client as `aisaas all`
/// runs them): `grpc.health.v1.Health/Check` with the platform's client settings and
/// interceptors, or with bare grpc-swift defaults (`--bare`), so that the cost of the RPC
/// plumbing can be told apart from the services' own work.
@main
struct GRPCUnaryBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grpc-unary-bench",
        abstract: "Unary gRPC calls per second over loopback, server and client in this process."
    )

    @Option(help: "Calls in flight at once.")
    var concurrency = 64

    @Option(help: "Seconds to measure (after one second of warm-up).")
    var seconds = 10

    @Flag(help: "Bare grpc-swift: no interceptors, no deadline, no service config.")
    var bare = false

    @Flag(help: "The platform's client settings without its request-scope interceptor.")
    var noClientInterceptor = false

    @Flag(help: "The platform's server without its request-scope interceptor.")
    var noServerInterceptor = false

    @Flag(help: "Run Swift concurrency's global executor on NIO's event loops.")
    var nioExecutor = false

    @Flag(help: "Over the in-process link `aisaas all` uses instead of loopback HTTP/2.")
    var inProcess = false

    func run() async throws {
        if nioExecutor { _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor() }
        let logger = Logger(label: "grpc-unary-bench")
        let health = HealthStatus()
        health.set(.serving)
        let interceptors: [any ServerInterceptor] = bare || noServerInterceptor ? [] : [RequestScopeServerInterceptor(application: "bench", logger: logger)]
        if inProcess {
            let link = InProcessServiceLink(name: "bench")
            let server = GRPCServer(transport: link.serverTransport, services: [HealthService(status: health)], interceptors: interceptors)
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await server.serve() }
                if bare {
                    try await measure(GRPCClient(transport: link.makeClientTransport()), in: &group)
                } else {
                    try await measure(ServiceClientFactory.make(link, interceptors: noClientInterceptor ? [] : [RequestScopeClientInterceptor()]), in: &group)
                }
                server.beginGracefulShutdown()
            }
            return
        }
        let server = GRPCServer(
            transport: HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext),
            services: [HealthService(status: health)],
            interceptors: interceptors
        )
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            guard let address = try await server.listeningAddress?.ipv4 else { throw ValidationError("no listening address") }
            let target = HostPort(host: address.host, port: address.port)
            if bare {
                let client = GRPCClient(transport: try .http2NIOPosix(target: .ipv4(address: address.host, port: address.port), transportSecurity: .plaintext))
                try await measure(client, in: &group)
            } else {
                let client = try ServiceClientFactory.make(.fixed(name: "bench", [target]), interceptors: noClientInterceptor ? [] : [RequestScopeClientInterceptor()])
                try await measure(client, in: &group)
            }
            server.beginGracefulShutdown()
        }
    }

    private func measure<Transport: ClientTransport>(_ client: GRPCClient<Transport>, in group: inout ThrowingDiscardingTaskGroup<any Error>) async throws {
        group.addTask { try await client.runConnections() }
        let health = Grpc_Health_V1_Health.Client(wrapping: client)
        _ = try await measure(health, for: .seconds(1))
        let cpuBefore = Self.processCPUSeconds()
        let (calls, latencies) = try await measure(health, for: .seconds(seconds))
        let cpuPerCall = (Self.processCPUSeconds() - cpuBefore) / Double(max(calls, 1)) * 1e6
        let sorted = latencies.sorted()
        func percentile(_ p: Double) -> String {
            guard !sorted.isEmpty else { return "-" }
            let value = sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
            return String(format: "%.2f ms", Double(value.components.attoseconds) / 1e15 + Double(value.components.seconds) * 1000)
        }
        print("\(bare ? "bare grpc-swift" : "platform client")\(inProcess ? " in process" : ""): \(calls / seconds) calls/s, p50 \(percentile(0.5)), p99 \(percentile(0.99)), \(Int(cpuPerCall)) µs CPU per call, concurrency \(concurrency)")
        client.beginGracefulShutdown()
    }

    /// User and system CPU time of this process so far.
    static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    private func measure<Transport: ClientTransport>(_ health: Grpc_Health_V1_Health.Client<Transport>, for duration: Duration) async throws -> (Int, [Duration]) {
        let end = ContinuousClock.now + duration
        return try await withThrowingTaskGroup(of: [Duration].self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    // As the gateway's calls do, each sends a request id (and the server adopts it).
                    try await RequestScope.$current.withValue(RequestScope(requestId: SortableID.make())) {
                        var latencies: [Duration] = []
                        while ContinuousClock.now < end {
                            let started = ContinuousClock.now
                            _ = try await health.check(.with { $0.service = "" })
                            latencies.append(ContinuousClock.now - started)
                        }
                        return latencies
                    }
                }
            }
            var all: [Duration] = []
            for try await latencies in group { all += latencies }
            return (all.count, all)
        }
    }
}
