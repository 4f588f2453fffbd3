import AISaaSProtos
import GRPCCore
import Logging
import NIOCore
import NIOPosix
import Platform
import Synchronization
import Testing

/// A health service whose `Check` runs a closure of the test's.
private struct ScriptedHealthService: Grpc_Health_V1_Health.SimpleServiceProtocol {
    let check: @Sendable () async throws -> Void

    func check(request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext) async throws -> Grpc_Health_V1_HealthCheckResponse {
        try await check()
        return .with { $0.status = .serving }
    }

    func watch(request: Grpc_Health_V1_HealthCheckRequest, response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>, context: ServerContext) async throws {}
}

/// A value shared between a test and the tasks it starts.
private final class Shared<Value: Sendable>: Sendable {
    private let value: Mutex<Value>

    init(_ value: Value) {
        self.value = Mutex(value)
    }

    func set(_ newValue: Value) { value.withLock { $0 = newValue } }
    var get: Value { value.withLock { $0 } }
}

/// A gate a handler waits at until the test opens it, telling when a handler arrived.
private final class Gate: Sendable {
    private let arrivals: AsyncStream<Void>.Continuation
    let arrived: AsyncStream<Void>
    private let state = Mutex<(open: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

    init() {
        (arrived, arrivals) = AsyncStream.makeStream()
    }

    func pass() async {
        arrivals.yield()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let open = state.withLock { state in
                if !state.open { state.waiting.append(continuation) }
                return state.open
            }
            if open { continuation.resume() }
        }
    }

    func open() {
        let waiting = state.withLock { state in
            state.open = true
            defer { state.waiting = [] }
            return state.waiting
        }
        for waiter in waiting { waiter.resume() }
    }
}

@Suite("in-process gRPC transport")
struct InProcessTransportTests {
    private static let request = Grpc_Health_V1_HealthCheckRequest.with { $0.service = "" }

    @Test("a call made before the server listens waits for it, then is served", .timeLimit(.minutes(1)))
    func callBeforeListen() async throws {
        let link = InProcessServiceLink(name: "scripted")
        let server = GRPCServer(transport: link.serverTransport, services: [ScriptedHealthService { }])
        let client = ServiceClientFactory.make(link)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await client.runConnections() }
            let call = Task { try await Grpc_Health_V1_Health.Client(wrapping: client).check(Self.request) }
            try await Task.sleep(for: .milliseconds(100))
            group.addTask { try await server.serve() }
            #expect(try await call.value.status == .serving)
            client.beginGracefulShutdown()
            server.beginGracefulShutdown()
        }
    }

    @Test("a graceful shutdown lets the calls in flight finish and refuses new ones; serving ends after them", .timeLimit(.minutes(1)))
    func gracefulShutdown() async throws {
        let gate = Gate()
        let link = InProcessServiceLink(name: "scripted")
        let server = GRPCServer(transport: link.serverTransport, services: [ScriptedHealthService { await gate.pass() }])
        let client = ServiceClientFactory.make(link)
        let health = Grpc_Health_V1_Health.Client(wrapping: client)
        let served = Shared(false)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                try await server.serve()
                served.set(true)
            }
            group.addTask { try await client.runConnections() }
            let inFlight = Task { try await health.check(Self.request) }
            for await _ in gate.arrived { break }
            #expect(link.serverTransport.openCalls == 1)

            server.beginGracefulShutdown()
            do {
                _ = try await health.check(Self.request)
                Issue.record("a call was taken after the shutdown began")
            } catch let error as RPCError {
                #expect(error.code == .unavailable)
            }
            try await Task.sleep(for: .milliseconds(50))
            #expect(!served.get, "the server stopped with a call in flight")

            gate.open()
            #expect(try await inFlight.value.status == .serving)
            client.beginGracefulShutdown()
        }
        #expect(served.get)
        #expect(link.serverTransport.openCalls == 0)
    }

    @Test("the handler runs on the caller's event loop")
    func handlerRunsOnTheCallersLoop() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let handlerLoop = Shared<ObjectIdentifier?>(nil)
        let link = InProcessServiceLink(name: "scripted")
        let server = GRPCServer(transport: link.serverTransport, services: [ScriptedHealthService {
            let current = MultiThreadedEventLoopGroup.currentEventLoop.map { ObjectIdentifier($0) }
            handlerLoop.set(current)
        }])
        let client = ServiceClientFactory.make(link)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            group.addTask { try await client.runConnections() }
            let health = Grpc_Health_V1_Health.Client(wrapping: client)
            _ = try await withTaskExecutorPreference(EventLoopTaskExecutor.of(loop)) { try await health.check(Self.request) }
            #expect(handlerLoop.get == ObjectIdentifier(loop))
            client.beginGracefulShutdown()
            server.beginGracefulShutdown()
        }
    }

    @Test("a caller that leaves gets CANCELLED, and the handler's task is cancelled", .timeLimit(.minutes(1)))
    func callerLeaving() async throws {
        let gate = Gate()
        let handlerCancelled = Shared(false)
        let link = InProcessServiceLink(name: "scripted")
        let server = GRPCServer(transport: link.serverTransport, services: [ScriptedHealthService {
            await gate.pass()
            handlerCancelled.set(Task.isCancelled)
            try Task.checkCancellation()
        }])
        let client = ServiceClientFactory.make(link)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            group.addTask { try await client.runConnections() }
            let health = Grpc_Health_V1_Health.Client(wrapping: client)
            let call = Task { try await health.check(Self.request) }
            for await _ in gate.arrived { break }
            call.cancel()
            do {
                _ = try await call.value
                Issue.record("a cancelled call answered")
            } catch let error as RPCError {
                #expect(error.code == .cancelled)
            }
            gate.open()
            for _ in 0..<200 where link.serverTransport.openCalls > 0 { try await Task.sleep(for: .milliseconds(10)) }
            #expect(handlerCancelled.get)
            #expect(link.serverTransport.openCalls == 0)
            client.beginGracefulShutdown()
            server.beginGracefulShutdown()
        }
    }
}

@Suite("event loop executors")
struct EventLoopTaskExecutorTests {
    @Test("a task preferring a loop's executor runs on that loop, and so do the tasks it starts on its loop")
    func tasksRunOnTheirLoop() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let executor = EventLoopTaskExecutor.of(loop)
        #expect(EventLoopTaskExecutor.of(loop) === executor)
        // The test runs on Swift's cooperative pool, off the loops.
        #expect(EventLoopTaskExecutor.current == nil)
        let (onLoop, childOnLoop, currentIsItsOwn) = await withTaskExecutorPreference(executor) {
            let child = Task.onCurrentLoop { loop.inEventLoop }
            return (loop.inEventLoop, await child.value, EventLoopTaskExecutor.current === executor)
        }
        #expect(onLoop && childOnLoop && currentIsItsOwn)
    }

    @Test("a time limit on a loop cancels the operation and throws when it passes; an operation that ends first returns")
    func timeLimitOnALoop() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let cancelled = Shared(false)
        await withTaskExecutorPreference(EventLoopTaskExecutor.of(loop)) {
            await #expect(throws: TimeLimitExceeded.self) {
                try await withTimeLimit(.milliseconds(50)) {
                    do {
                        try await Task.sleep(for: .seconds(30))
                    } catch {
                        cancelled.set(true)
                        throw error
                    }
                }
            }
            let value = try? await withTimeLimit(.seconds(30)) { 7 }
            #expect(value == 7)
        }
        #expect(cancelled.get)
    }
}
