import AISaaSProtos
import GRPCCore
import NIOPosix
import Synchronization
import Testing

@testable import Platform

/// What a scripted health service's `Check` does.
private struct ScriptedCheck: Grpc_Health_V1_Health.SimpleServiceProtocol {
    let check: @Sendable (Grpc_Health_V1_HealthCheckRequest, ServerContext) async throws -> Grpc_Health_V1_HealthCheckResponse

    func check(request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext) async throws -> Grpc_Health_V1_HealthCheckResponse {
        try await check(request, context)
    }

    func watch(request: Grpc_Health_V1_HealthCheckRequest, response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>, context: ServerContext) async throws {}
}

/// Notes on a shared list what it sees of each call, under its name, then passes the call on
/// (adding a metadata entry on the client side).
private struct NotingClientInterceptor: ClientInterceptor {
    let name: String
    let notes: Notes

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingClientRequest<Input>, context: ClientContext,
        next: @concurrent (StreamingClientRequest<Input>, ClientContext) async throws -> StreamingClientResponse<Output>
    ) async throws -> StreamingClientResponse<Output> {
        notes.add("client \(name)")
        var request = request
        request.metadata.addString(name, forKey: "x-passed")
        return try await next(request, context)
    }
}

private struct NotingServerInterceptor: ServerInterceptor {
    let name: String
    let notes: Notes
    var refusal: RPCError?

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @concurrent @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        notes.add("server \(name) sees \(request.metadata[stringValues: "x-passed"].joined(separator: ","))")
        if let refusal { throw refusal }
        do {
            return try await next(request, context)
        } catch {
            notes.add("server \(name) caught \(type(of: error))")
            throw error
        }
    }
}

private final class Notes: Sendable {
    private let notes = Mutex<[String]>([])
    func add(_ note: String) { notes.withLock { $0.append(note) } }
    var all: [String] { notes.withLock { $0 } }
}

/// Tells each call's end to the test.
private final class RecordingObserver: ClientCallObserver {
    private let ended = Mutex<[(code: RPCError.Code?, answered: Bool)]>([])
    var calls: [(code: RPCError.Code?, answered: Bool)] { ended.withLock { $0 } }

    func callEnded(method: MethodDescriptor, peer: String, code: RPCError.Code?, answered: Bool, started: ContinuousClock.Instant) {
        ended.withLock { $0.append((code, answered)) }
    }
}

private final class Flag: Sendable {
    private let value = Atomic(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}

private struct Unwelcome: Error {}

@Suite("direct in-process calls")
struct DirectCallsTests {
    private typealias Health = any Grpc_Health_V1_Health.StreamingServiceProtocol

    private static func check(_ caller: DirectUnaryCaller, service: String = "") async throws -> Grpc_Health_V1_HealthCheckResponse {
        try await caller.unary(
            ClientRequest(message: .with { $0.service = service }), method: Grpc_Health_V1_Health.Method.Check.descriptor, options: .defaults,
            of: Health.self, handler: { try await $0.check(request: $1, context: $2) }, onResponse: { try $0.message }
        )
    }

    /// `body` with the link's server serving `services` (published for direct calls) and the
    /// caller's deadlines kept.
    private static func serving(
        _ services: [any RegistrableRPCService], interceptors: [any ServerInterceptor] = [], link: InProcessServiceLink, caller: DirectUnaryCaller,
        _ body: @Sendable (GRPCServer<InProcessServerTransport>) async throws -> Void
    ) async throws {
        let server = GRPCServer(transport: link.serverTransport, services: services, interceptors: interceptors)
        link.directTarget.publish(services: services, interceptors: interceptors)
        try await withThrowingTaskGroup { group in
            group.addTask { try await server.serve() }
            group.addTask { try await caller.service.run() }
            try await body(server)
            server.beginGracefulShutdown()
            group.cancelAll()
        }
    }

    @Test("a call runs the client's interceptors, then the server's, then the handler; metadata and the answer travel; observers hear OK")
    func servedThroughBothSides() async throws {
        let notes = Notes()
        let observer = RecordingObserver()
        let link = InProcessServiceLink(name: "direct")
        let caller = DirectUnaryCaller(
            link, callTimeout: .seconds(60),
            interceptors: [NotingClientInterceptor(name: "a", notes: notes), NotingClientInterceptor(name: "b", notes: notes)],
            observers: [observer]
        )
        let service = ScriptedCheck { request, context in
            notes.add("handler \(request.service) \(context.descriptor.method)")
            return .with { $0.status = .notServing }
        }
        try await Self.serving(
            [service], interceptors: [NotingServerInterceptor(name: "outer", notes: notes), NotingServerInterceptor(name: "inner", notes: notes)],
            link: link, caller: caller
        ) { _ in
            let answer = try await Self.check(caller, service: "users")
            #expect(answer.status == .notServing)
        }
        #expect(notes.all == ["client a", "client b", "server outer sees a,b", "server inner sees a,b", "handler users Check"])
        #expect(observer.calls.map(\.code) == [nil])
        #expect(observer.calls.map(\.answered) == [true])
        #expect(link.serverTransport.openCalls == 0)
    }

    @Test("errors reach the caller as statuses: an RPCError with its trailers but not its cause, anything else UNKNOWN, an interceptor's refusal as it is")
    func errorsAsStatuses() async throws {
        let notes = Notes()
        let observer = RecordingObserver()
        let link = InProcessServiceLink(name: "direct")
        let caller = DirectUnaryCaller(link, callTimeout: .seconds(60), interceptors: [], observers: [observer])
        let service = ScriptedCheck { request, _ in
            switch request.service {
            case "rpc": throw RPCError(code: .alreadyExists, message: "taken", metadata: ["x-reason": "duplicate"], cause: Unwelcome())
            case "other": throw Unwelcome()
            default: return .with { $0.status = .serving }
            }
        }
        try await Self.serving([service], interceptors: [NotingServerInterceptor(name: "around", notes: notes)], link: link, caller: caller) { _ in
            let rpc = await #expect(throws: RPCError.self) { try await Self.check(caller, service: "rpc") }
            #expect(rpc?.code == .alreadyExists)
            #expect(rpc?.message == "taken")
            #expect(rpc?.metadata[stringValues: "x-reason"].first(where: { _ in true }) == "duplicate")
            #expect(rpc?.cause == nil, "the server's underlying error crossed to the client")
            let other = await #expect(throws: RPCError.self) { try await Self.check(caller, service: "other") }
            #expect(other?.code == .unknown)
            #expect(other?.message == "", "an interceptor around the handler turns its error into the status, as grpc-swift's does")
        }
        let bare = InProcessServiceLink(name: "bare")
        let bareCaller = DirectUnaryCaller(bare, callTimeout: .seconds(60), interceptors: [])
        try await Self.serving([service], link: bare, caller: bareCaller) { _ in
            let other = await #expect(throws: RPCError.self) { try await Self.check(bareCaller, service: "other") }
            #expect(other?.code == .unknown)
            #expect(other?.message == "Service method threw an unknown error.")
        }
        // The interceptor around the handler saw the handler's own error, as grpc-swift's server gives it.
        #expect(notes.all.contains("server around caught Unwelcome"))
        #expect(observer.calls.map(\.code) == [.alreadyExists, .unknown])

        let refusing = InProcessServiceLink(name: "refusing")
        let refused = DirectUnaryCaller(refusing, callTimeout: .seconds(60), interceptors: [])
        let refusal = NotingServerInterceptor(name: "gate", notes: notes, refusal: RPCError(code: .permissionDenied, message: "not you"))
        try await Self.serving([ScriptedCheck { _, _ in .with { $0.status = .serving } }], interceptors: [refusal], link: refusing, caller: refused) { _ in
            let error = await #expect(throws: RPCError.self) { try await Self.check(refused) }
            #expect(error?.code == .permissionDenied)
            #expect(error?.message == "not you")
        }
    }

    @Test("a client interceptor's error is the call's status, and the call never reaches the server")
    func clientInterceptorRefusing() async throws {
        struct Refusing: ClientInterceptor {
            func intercept<Input: Sendable, Output: Sendable>(
                request: StreamingClientRequest<Input>, context: ClientContext,
                next: @concurrent (StreamingClientRequest<Input>, ClientContext) async throws -> StreamingClientResponse<Output>
            ) async throws -> StreamingClientResponse<Output> {
                throw Unwelcome()
            }
        }
        let reached = Flag()
        let observer = RecordingObserver()
        let link = InProcessServiceLink(name: "direct")
        let caller = DirectUnaryCaller(link, callTimeout: .seconds(60), interceptors: [Refusing()], observers: [observer])
        try await Self.serving([ScriptedCheck { _, _ in reached.set(); return .with { $0.status = .serving } }], link: link, caller: caller) { _ in
            let error = await #expect(throws: RPCError.self) { try await Self.check(caller) }
            #expect(error?.code == .unknown)
        }
        #expect(!reached.isSet)
        #expect(observer.calls.map(\.code) == [.unknown])
        #expect(observer.calls.map(\.answered) == [false])
    }

    @Test("a service the server does not publish is UNIMPLEMENTED")
    func unpublishedService() async throws {
        let link = InProcessServiceLink(name: "direct")
        let caller = DirectUnaryCaller(link, callTimeout: .seconds(60), interceptors: [])
        try await Self.serving([HealthService(status: HealthStatus())], link: link, caller: caller) { _ in
            let error = await #expect(throws: RPCError.self) {
                try await caller.unary(
                    ClientRequest(message: Grpc_User_V1_QueryUserByIdRequest()), method: Grpc_User_V1_UserService.Method.GetUserById.descriptor,
                    options: .defaults, of: (any Grpc_User_V1_UserService.StreamingServiceProtocol).self,
                    handler: { try await $0.getUserById(request: $1, context: $2) }, onResponse: { try $0.message }
                )
            }
            #expect(error?.code == .unimplemented)
        }
    }

    @Test("calls wait for the server to listen, are refused once it shuts down, and those in flight finish first", .timeLimit(.minutes(1)))
    func readinessAndShutdown() async throws {
        let link = InProcessServiceLink(name: "direct")
        let caller = DirectUnaryCaller(link, callTimeout: .seconds(60), interceptors: [])
        let (arrivals, arrived) = AsyncStream<Void>.makeStream()
        let (release, released) = AsyncStream<Void>.makeStream()
        let service = ScriptedCheck { request, _ in
            if request.service == "hold" {
                arrived.yield()
                for await _ in release { break }
            }
            return .with { $0.status = .serving }
        }
        let server = GRPCServer(transport: link.serverTransport, services: [service])
        link.directTarget.publish(services: [service], interceptors: [])
        try await withThrowingTaskGroup { group in
            group.addTask { try await caller.service.run() }
            let early = Task { try await Self.check(caller) }
            try await Task.sleep(for: .milliseconds(100))
            let serving = Task { try await server.serve() }
            #expect(try await early.value.status == .serving)

            let held = Task { try await Self.check(caller, service: "hold") }
            for await _ in arrivals { break }
            #expect(link.serverTransport.openCalls == 1)
            server.beginGracefulShutdown()
            let refused = await #expect(throws: RPCError.self) { try await Self.check(caller) }
            #expect(refused?.code == .unavailable)
            released.yield()
            #expect(try await held.value.status == .serving)
            try await serving.value
            #expect(link.serverTransport.openCalls == 0)
            group.cancelAll()
        }
    }

    /// A `Check` that waits until it is cancelled (telling `cancelled`), then, given `held`, until
    /// the test releases it, as a handler busy with work it cannot stop.
    private static func waitingUntilCancelled(
        arrived: AsyncStream<Void>.Continuation? = nil, cancelled: Flag, held: AsyncStream<Void>? = nil
    ) -> ScriptedCheck {
        ScriptedCheck { _, _ in
            arrived?.yield()
            do {
                try await Task.sleep(for: .seconds(60))
            } catch {
                cancelled.set()
                if let held {
                    // A detached task's value is awaited through the cancellation.
                    await Task.detached { for await _ in held { break } }.value
                }
                throw error
            }
            return .with { $0.status = .serving }
        }
    }

    @Test("the deadline ends the call at once with DEADLINE_EXCEEDED, without waiting for the handler, and cancels it", .timeLimit(.minutes(1)))
    func deadline() async throws {
        let cancelled = Flag()
        let observer = RecordingObserver()
        let link = InProcessServiceLink(name: "direct")
        let caller = DirectUnaryCaller(
            link, callTimeout: .milliseconds(300), interceptors: [], observers: [observer], deadlines: DeadlineWheel(resolution: .milliseconds(20))
        )
        let (held, release) = AsyncStream<Void>.makeStream()
        let service = Self.waitingUntilCancelled(cancelled: cancelled, held: held)
        try await Self.serving([service], link: link, caller: caller) { _ in
            let error = await #expect(throws: RPCError.self) { try await Self.check(caller) }
            #expect(error?.code == .deadlineExceeded)
            // The caller has its answer while the handler is still held.
            #expect(link.serverTransport.openCalls == 1, "the caller waited for the handler")
            let noticed = try await Self.eventually { cancelled.isSet }
            #expect(noticed, "the handler was not cancelled")
            release.yield()
            let closed = try await Self.eventually { link.serverTransport.openCalls == 0 }
            #expect(closed, "the call stayed open after its handler returned")
        }
        #expect(observer.calls.map(\.code) == [.deadlineExceeded])
        #expect(observer.calls.map(\.answered) == [false])
    }

    @Test("a caller that leaves gets CANCELLED and its handler is cancelled", .timeLimit(.minutes(1)))
    func callerLeaving() async throws {
        let cancelled = Flag()
        let link = InProcessServiceLink(name: "direct")
        let caller = DirectUnaryCaller(link, callTimeout: .seconds(60), interceptors: [])
        let (arrivals, arrived) = AsyncStream<Void>.makeStream()
        try await Self.serving([Self.waitingUntilCancelled(arrived: arrived, cancelled: cancelled)], link: link, caller: caller) { _ in
            let call = Task { try await Self.check(caller) }
            for await _ in arrivals { break }
            call.cancel()
            let error = await #expect(throws: RPCError.self) { try await call.value }
            #expect(error?.code == .cancelled)
            let ended = try await Self.eventually { cancelled.isSet && link.serverTransport.openCalls == 0 }
            #expect(ended, "the handler was not cancelled, or its call stayed open")
        }
    }

    @Test("waiting for a server that does not listen counts against the deadline", .timeLimit(.minutes(1)))
    func deadlineBeforeListening() async throws {
        let link = InProcessServiceLink(name: "direct")
        let caller = DirectUnaryCaller(link, callTimeout: .milliseconds(300), interceptors: [], deadlines: DeadlineWheel(resolution: .milliseconds(20)))
        link.directTarget.publish(services: [ScriptedCheck { _, _ in .with { $0.status = .serving } }], interceptors: [])
        let error = await #expect(throws: RPCError.self) { try await Self.check(caller) }
        #expect(error?.code == .deadlineExceeded)
        #expect(link.serverTransport.openCalls == 0)
    }

    @Test("a server that stops ends its calls UNAVAILABLE and cancels their handlers", .timeLimit(.minutes(1)))
    func serverStopping() async throws {
        let cancelled = Flag()
        let link = InProcessServiceLink(name: "direct")
        let caller = DirectUnaryCaller(link, callTimeout: .seconds(60), interceptors: [])
        let (arrivals, arrived) = AsyncStream<Void>.makeStream()
        let service = Self.waitingUntilCancelled(arrived: arrived, cancelled: cancelled)
        let server = GRPCServer(transport: link.serverTransport, services: [service])
        link.directTarget.publish(services: [service], interceptors: [])
        try await withThrowingTaskGroup { group in
            group.addTask { try await caller.service.run() }
            let serving = Task { try await server.serve() }
            let call = Task { try await Self.check(caller) }
            for await _ in arrivals { break }
            serving.cancel()
            let error = await #expect(throws: RPCError.self) { try await call.value }
            #expect(error?.code == .unavailable)
            let ended = try await Self.eventually { cancelled.isSet && link.serverTransport.openCalls == 0 }
            #expect(ended, "the handler was not cancelled, or its call stayed open")
            _ = await serving.result
            group.cancelAll()
        }
    }

    @Test("while the process drains, a graceful shutdown leaves the RPC of a call in flight alone and the call is answered", .timeLimit(.minutes(1)))
    func drainingShieldsCallsInFlight() async throws {
        let rpcCancelled = Flag()
        let health = HealthStatus()
        let link = InProcessServiceLink(name: "direct")
        let caller = DirectUnaryCaller(link, callTimeout: .seconds(60), interceptors: [])
        let (arrivals, arrived) = AsyncStream<Void>.makeStream()
        let (release, released) = AsyncStream<Void>.makeStream()
        let service = ScriptedCheck { _, _ in
            try await withRPCCancellationHandler {
                arrived.yield()
                for await _ in release { break }
            } onCancelRPC: {
                rpcCancelled.set()
            }
            return .with { $0.status = .serving }
        }
        try await Self.serving([service], interceptors: [DrainingServerInterceptor(health: health)], link: link, caller: caller) { server in
            let call = Task { try await Self.check(caller) }
            for await _ in arrivals { break }
            health.markAllNotServing()
            server.beginGracefulShutdown()
            try await Task.sleep(for: .milliseconds(100))
            released.yield()
            #expect(try await call.value.status == .serving)
        }
        #expect(!rpcCancelled.isSet, "the drain cancelled the RPC of a call in flight")
    }

    @Test("the handler runs on the caller's event loop")
    func handlerOnTheCallersLoop() async throws {
        let link = InProcessServiceLink(name: "direct")
        let caller = DirectUnaryCaller(link, callTimeout: .seconds(60), interceptors: [])
        // A loop of its own: other suites running beside this one may keep the shared loops busy.
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = loops.next()
        let handlerLoop = Mutex<ObjectIdentifier?>(nil)
        let service = ScriptedCheck { _, _ in
            handlerLoop.withLock { $0 = MultiThreadedEventLoopGroup.currentEventLoop.map { ObjectIdentifier($0) } }
            return .with { $0.status = .serving }
        }
        try await Self.serving([service], link: link, caller: caller) { _ in
            _ = try await Task(executorPreference: EventLoopTaskExecutor.of(loop)) { try await Self.check(caller) }.value
        }
        #expect(handlerLoop.withLock { $0 } == ObjectIdentifier(loop))
        try await loops.shutdownGracefully()
    }

    private static func eventually(_ condition: @Sendable () -> Bool) async throws -> Bool {
        for _ in 0..<400 {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(25))
        }
        return condition()
    }
}
