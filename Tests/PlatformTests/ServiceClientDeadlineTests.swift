import AISaaSProtos
import Foundation
import GRPCCore
import GRPCInProcessTransport
import GRPCNIOTransportHTTP2
import Logging
import NIOPosix
import Platform
import Synchronization
import Testing

/// What the hanging service saw.
private final class Seen: Sendable {
    struct State {
        var timeoutHeaders: [String] = []
        var calls = 0
        var cancelled = 0
    }

    private let state = Mutex(State())

    func withLock<R>(_ body: (inout State) -> R) -> R { state.withLock { body(&$0) } }
}

/// A health service whose `Check` hangs until its RPC is cancelled.
private struct HangingHealthService: Grpc_Health_V1_Health.SimpleServiceProtocol {
    let seen: Seen

    func check(request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext) async throws -> Grpc_Health_V1_HealthCheckResponse {
        // As the platform's handlers do: an RPC's cancellation (its deadline, or the client
        // resetting the stream) cancels the work.
        let work = Task { try await Task.sleep(for: .seconds(60)) }
        do {
            try await withRPCCancellationHandler {
                try await work.value
            } onCancelRPC: {
                work.cancel()
            }
        } catch {
            seen.withLock { $0.cancelled += 1 }
            throw error
        }
        return .with { $0.status = .serving }
    }

    func watch(request: Grpc_Health_V1_HealthCheckRequest, response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>, context: ServerContext) async throws {}
}

/// A health service whose `Check` answers after a pause.
private struct SlowHealthService: Grpc_Health_V1_Health.SimpleServiceProtocol {
    let pause: Duration

    func check(request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext) async throws -> Grpc_Health_V1_HealthCheckResponse {
        try await Task.sleep(for: pause)
        return .with { $0.status = .serving }
    }

    func watch(request: Grpc_Health_V1_HealthCheckRequest, response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>, context: ServerContext) async throws {}
}

/// Records the metadata of every call.
private struct RecordingInterceptor: ServerInterceptor {
    let seen: Seen

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @concurrent @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        if context.descriptor.method == "Check" {
            seen.withLock {
                $0.calls += 1
                $0.timeoutHeaders += request.metadata[stringValues: "grpc-timeout"]
            }
        }
        return try await next(request, context)
    }
}

@Suite("service client deadlines")
struct ServiceClientDeadlineTests {
    /// The client keeps the deadline to itself: when it passes, the call fails with
    /// DEADLINE_EXCEEDED and the server's handler is cancelled, though the server was never told.
    @Test func aHungCallEndsAtTheDeadlineAndTheServerStops() async throws {
        let seen = Seen()
        let server = GRPCServer(
            transport: HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext, config: .platform()),
            services: [HangingHealthService(seen: seen)],
            interceptors: [RecordingInterceptor(seen: seen)]
        )
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            let address = try #require(try await server.listeningAddress?.ipv4)
            let client = try ServiceClientFactory.make(
                .fixed(name: "hanging", [HostPort(host: address.host, port: address.port)]),
                settings: ServiceClientSettings(callTimeout: .seconds(3))
            )
            group.addTask { try await client.runConnections() }
            let health = Grpc_Health_V1_Health.Client(wrapping: client)
            // Connected first (Watch answers at once here), so the deadline is all the call's;
            // on a loaded machine connecting may itself outlast a deadline.
            for attempt in 1...10 {
                do {
                    try await health.watch(.with { $0.service = "" }) { _ in }
                    break
                } catch let error as RPCError where error.code == .deadlineExceeded && attempt < 10 {
                    continue
                }
            }

            let started = ContinuousClock.now
            do {
                _ = try await health.check(.with { $0.service = "" })
                Issue.record("a hung call returned")
            } catch let error as RPCError {
                #expect(error.code == .deadlineExceeded)
            }
            // Behaviour, not speed: not before the deadline, and far sooner than the handler's 60 s.
            let elapsed = ContinuousClock.now - started
            #expect(elapsed >= .seconds(3))
            #expect(elapsed < .seconds(30))
            var cancelled = false
            for _ in 0..<400 where !cancelled {
                try await Task.sleep(for: .milliseconds(25))
                cancelled = seen.withLock { $0.cancelled == 1 }
            }
            #expect(cancelled)
            #expect(seen.withLock { $0.calls } == 1)
            #expect(seen.withLock { $0.timeoutHeaders }.isEmpty)
            client.beginGracefulShutdown()
            server.beginGracefulShutdown()
        }
    }

    /// The client pings a connection every two seconds, also during a call; the platform's
    /// server takes those pings (grpc-swift's default server takes the second and later pings of
    /// a quiet call as strikes and closes the connection at the third, failing it UNAVAILABLE).
    @Test func aCallQuietForManyKeepalivePingsIsAnswered() async throws {
        try await Self.withConnectedClient(to: SlowHealthService(pause: .milliseconds(9500))) { health in
            let answer = try await health.check(.with { $0.service = "" })
            #expect(answer.status == .serving)
        }
    }

    /// A server whose process stalls (its event loop blocked, as on a busy machine) for less than
    /// the ping timeout keeps its connection and answers the call in flight; one that stays silent
    /// longer is taken for frozen: the connection is closed and the call fails UNAVAILABLE (to be
    /// retried elsewhere) long before its deadline and before the server comes back.
    @Test(arguments: [(stallMilliseconds: 1500, frozen: false), (stallMilliseconds: 9000, frozen: true)])
    func aStalledServer(stallMilliseconds: Int, frozen: Bool) async throws {
        let stall = Duration.milliseconds(stallMilliseconds)
        let serverLoops = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        try await Self.withConnectedClient(to: SlowHealthService(pause: .seconds(3)), serverLoops: serverLoops) { health in
            let call = Task { try await health.check(.with { $0.service = "" }) }
            try await Task.sleep(for: .milliseconds(300))
            let stalled = ContinuousClock.now
            serverLoops.next().execute { usleep(UInt32(stallMilliseconds * 1000)) }
            switch await call.result {
            case .success(let answer):
                #expect(!frozen, "a call on a server silent for \(stall) waited for it")
                #expect(answer.status == .serving)
            case .failure(let error):
                #expect(frozen, "a server stalled for \(stall) lost its call: \(error)")
                #expect((error as? RPCError)?.code == .unavailable, "\(error)")
                #expect(ContinuousClock.now - stalled < stall, "the call waited for the server to come back")
            }
        }
        try await serverLoops.shutdownGracefully()
    }

    /// In process, the deadline resets the call as between processes: it ends for the caller and
    /// the server's handler is cancelled.
    @Test func inProcessDeadlineCancelsTheHandler() async throws {
        let seen = Seen()
        let link = InProcessServiceLink(name: "hanging")
        let server = GRPCServer(transport: link.serverTransport, services: [HangingHealthService(seen: seen)])
        let client = ServiceClientFactory.make(link, settings: ServiceClientSettings(callTimeout: .seconds(1)))
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            group.addTask { try await client.runConnections() }
            let health = Grpc_Health_V1_Health.Client(wrapping: client)
            do {
                _ = try await health.check(.with { $0.service = "" })
                Issue.record("a hung call returned")
            } catch let error as RPCError {
                #expect(error.code == .deadlineExceeded)
            }
            #expect(try await Self.eventually { seen.withLock { $0.cancelled == 1 } })
            #expect(try await Self.eventually { link.serverTransport.openCalls == 0 })
            client.beginGracefulShutdown()
            server.beginGracefulShutdown()
        }
    }

    /// A caller that leaves (its task cancelled, as when an HTTP client disconnects) cancels the
    /// in-process handler at once, long before any deadline.
    @Test func inProcessCallerLeavingCancelsTheHandler() async throws {
        let seen = Seen()
        let link = InProcessServiceLink(name: "hanging")
        let server = GRPCServer(
            transport: link.serverTransport, services: [HangingHealthService(seen: seen)], interceptors: [RecordingInterceptor(seen: seen)]
        )
        let client = ServiceClientFactory.make(link, settings: ServiceClientSettings(callTimeout: .seconds(120)))
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            group.addTask { try await client.runConnections() }
            let health = Grpc_Health_V1_Health.Client(wrapping: client)
            let call = Task { try await health.check(.with { $0.service = "" }) }
            #expect(try await Self.eventually { seen.withLock { $0.calls == 1 } })
            call.cancel()
            _ = await call.result
            #expect(try await Self.eventually { seen.withLock { $0.cancelled == 1 } })
            #expect(try await Self.eventually { link.serverTransport.openCalls == 0 })
            // A call that completes leaves nothing behind and cancels nothing.
            _ = try await health.watch(.with { $0.service = "" }) { _ in }
            #expect(seen.withLock { $0.cancelled } == 1)
            #expect(try await Self.eventually { link.serverTransport.openCalls == 0 })
            client.beginGracefulShutdown()
            server.beginGracefulShutdown()
        }
    }

    /// `service` served on loopback with the platform's server settings (on `serverLoops`), and
    /// a platform client (60 s deadline) connected to it before `body` runs: a Watch, which
    /// answers at once, is made until it gets through.
    private static func withConnectedClient(
        to service: some RegistrableRPCService, serverLoops: MultiThreadedEventLoopGroup = .singletonMultiThreadedEventLoopGroup,
        _ body: @Sendable (Grpc_Health_V1_Health.Client<ServiceClientTransport<HTTP2ClientTransport.Posix>>) async throws -> Void
    ) async throws {
        let server = GRPCServer(
            transport: HTTP2ServerTransport.Posix(
                address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext, config: .platform(), eventLoopGroup: serverLoops
            ),
            services: [service]
        )
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            let address = try #require(try await server.listeningAddress?.ipv4)
            let client = try ServiceClientFactory.make(
                .fixed(name: "health", [HostPort(host: address.host, port: address.port)]),
                settings: ServiceClientSettings(callTimeout: .seconds(60))
            )
            group.addTask { try await client.runConnections() }
            let health = Grpc_Health_V1_Health.Client(wrapping: client)
            try await retryingWhenUnavailable(attempts: 20) { try await health.watch(.with { $0.service = "" }) { _ in } }
            try await body(health)
            client.beginGracefulShutdown()
            server.beginGracefulShutdown()
        }
    }

    private static func eventually(_ condition: @Sendable () -> Bool) async throws -> Bool {
        for _ in 0..<400 {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(25))
        }
        return condition()
    }
}
