import GRPCCore
import Logging
import NIOCore
import Synchronization

/// gRPC between a client and a server of one process: the generated clients and servers, their
/// interceptors, deadlines and error mapping as between processes, without sockets or HTTP/2.
///
/// grpc-swift's own in-process transport hands every call to a task of the server's, on
/// Swift's cooperative pool: the caller's request and the handler's answer each cross threads.
/// Here the handler runs in a task of its own that prefers the caller's executor, so a request
/// served on an event loop stays on it (`EventLoopTaskExecutor`). As with HTTP/2, the client does
/// not wait for the handler once the call is over for it, and a client that leaves, fails its
/// request stream or passes its deadline resets the call: the handler's task and its RPC are
/// cancelled and both streams fail.
public final class InProcessServerTransport: ServerTransport, Sendable {
    public typealias Bytes = [UInt8]
    public typealias StreamHandler = @concurrent @Sendable (_ stream: RPCStream<Inbound, Outbound>, _ context: ServerContext) async -> Void

    private enum Phase {
        /// Not listening yet: callers wait for it (by id, so that one that gives up can leave).
        case starting
        case listening(StreamHandler)
        /// Graceful shutdown: calls in flight finish, new ones are refused.
        case closed
    }

    private struct State {
        var phase = Phase.starting
        var waiting: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var open: [UInt64: any InProcessOpenCall] = [:]
        var nextID: UInt64 = 0
        /// `listen` waiting for the calls in flight after shutdown began.
        var drained: CheckedContinuation<Void, Never>?

        mutating func makeID() -> UInt64 {
            nextID &+= 1
            return nextID
        }
    }

    private let state = Mutex(State())

    public init() {}

    /// Calls whose handler has not returned yet.
    public var openCalls: Int { state.withLock { $0.open.count } }

    /// Whether a call opened now is taken at once.
    var isListening: Bool {
        state.withLock { state in
            if case .listening = state.phase { return true }
            return false
        }
    }

    /// Serves until a graceful shutdown has begun and the calls in flight are over. Cancelled, it
    /// ends them at once: each is reset as UNAVAILABLE, as a closed connection ends its streams.
    public func listen(streamHandler: @escaping StreamHandler) async throws {
        let waiting = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard case .starting = state.phase else { return [] }
            state.phase = .listening(streamHandler)
            defer { state.waiting = [:] }
            return Array(state.waiting.values)
        }
        for caller in waiting { caller.resume() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let done = state.withLock { state -> Bool in
                    if case .closed = state.phase, state.open.isEmpty { return true }
                    state.drained = continuation
                    return false
                }
                if done { continuation.resume() }
            }
        } onCancel: {
            beginGracefulShutdown()
            for call in state.withLock({ Array($0.open.values) }) {
                call.reset(RPCError(code: .unavailable, message: "the in-process server stopped"))
            }
        }
    }

    /// New calls are refused from now on; those in flight are told, as grpc-swift's transports
    /// tell them, through their RPC cancellation handle (`DrainingServerInterceptor` lets them
    /// finish while the process drains).
    public func beginGracefulShutdown() {
        let (waiting, open, drained) = state.withLock { state in
            let waiting = Array(state.waiting.values)
            state.waiting = [:]
            state.phase = .closed
            var drained: CheckedContinuation<Void, Never>?
            if state.open.isEmpty {
                drained = state.drained
                state.drained = nil
            }
            return (waiting, Array(state.open.values), drained)
        }
        for caller in waiting { caller.resume() }
        for call in open { call.cancelRPC() }
        drained?.resume()
    }

    /// The handler for `call`, which is counted open until `closeCall`; UNAVAILABLE once the
    /// server is closed, CANCELLED for a caller that leaves while the server is not listening yet.
    func openCall(_ call: any InProcessOpenCall) async throws -> (handler: StreamHandler, id: UInt64) {
        while true {
            enum Next {
                case handler(StreamHandler, UInt64)
                case wait
                case refused
            }
            let next = state.withLock { state -> Next in
                switch state.phase {
                case .listening(let handler):
                    let id = state.makeID()
                    state.open[id] = call
                    return .handler(handler, id)
                case .starting:
                    return .wait
                case .closed:
                    return .refused
                }
            }
            switch next {
            case .handler(let handler, let id):
                return (handler, id)
            case .refused:
                throw RPCError(code: .unavailable, message: "the in-process server is shutting down")
            case .wait:
                let id = state.withLock { $0.makeID() }
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                        let waits = state.withLock { state -> Bool in
                            guard case .starting = state.phase, !Task.isCancelled else { return false }
                            state.waiting[id] = continuation
                            return true
                        }
                        if !waits { continuation.resume() }
                    }
                } onCancel: {
                    state.withLock { $0.waiting.removeValue(forKey: id) }?.resume()
                }
                if Task.isCancelled { throw RPCError(code: .cancelled, message: "the caller went away before the in-process server started") }
            }
        }
    }

    func closeCall(_ id: UInt64) {
        let drained = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.open.removeValue(forKey: id)
            guard case .closed = state.phase, state.open.isEmpty else { return nil }
            defer { state.drained = nil }
            return state.drained
        }
        drained?.resume()
    }
}

/// The client side of `InProcessServerTransport`.
public struct InProcessClientTransport: ClientTransport {
    public typealias Bytes = [UInt8]

    private let server: InProcessServerTransport
    private let methodConfig: MethodConfig
    private let stopped = StopSignal()
    static let peer = "in-process"

    init(server: InProcessServerTransport, maxMessageBytes: Int) {
        self.server = server
        methodConfig = MethodConfig(
            names: [MethodConfig.Name(service: "")], maxRequestMessageBytes: maxMessageBytes, maxResponseMessageBytes: maxMessageBytes
        )
    }

    public var retryThrottle: RetryThrottle? { nil }

    /// Nothing to connect: returns once the client shuts down, or at once when cancelled.
    public func connect() async throws {
        await withTaskCancellationHandler {
            await stopped.wait()
        } onCancel: {
            stopped.signal()
        }
    }

    public func beginGracefulShutdown() {
        stopped.signal()
    }

    public func config(forMethod descriptor: MethodDescriptor) -> MethodConfig? {
        methodConfig
    }

    public func withStream<T: Sendable>(
        descriptor: MethodDescriptor,
        options: CallOptions,
        _ closure: @concurrent (_ stream: RPCStream<Inbound, Outbound>, _ context: ClientContext) async throws -> T
    ) async throws -> T {
        let requests = AsyncPipe<RPCRequestPart<Bytes>>(readerCancellation: .ignored)
        let responses = AsyncPipe<RPCResponsePart<Bytes>>(readerCancellation: .ignored)
        let call = InProcessCall(requests: requests, responses: responses)
        let (handler, callID) = try await server.openCall(call)
        let serverStream = RPCStream(
            descriptor: descriptor,
            inbound: RPCAsyncSequence<RPCRequestPart<Bytes>, any Error>(wrapping: requests),
            outbound: RPCWriter.Closable(wrapping: ResponseWriter(call: call))
        )
        let clientStream = RPCStream(
            descriptor: descriptor,
            inbound: RPCAsyncSequence<RPCResponsePart<Bytes>, any Error>(wrapping: responses),
            outbound: RPCWriter.Closable(wrapping: RequestWriter(call: call))
        )
        let server = self.server
        call.attach(task: Task.onCurrentLoop {
            await withServerContextRPCCancellationHandle { handle in
                call.attach(rpc: handle)
                let context = ServerContext(descriptor: descriptor, remotePeer: Self.peer, localPeer: Self.peer, cancellation: handle)
                await handler(serverStream, context)
            }
            // A handler that returned without closing its answer (it should not) ends the call.
            call.finishResponses(throwing: RPCError(code: .internalError, message: "the handler returned without a status"))
            server.closeCall(callID)
        })
        do {
            let result = try await withTaskCancellationHandler {
                try await closure(clientStream, ClientContext(descriptor: descriptor, remotePeer: Self.peer, localPeer: Self.peer))
            } onCancel: {
                call.reset(RPCError(code: .cancelled, message: "the caller went away"))
            }
            // Done for the client: a server still answering (the client stopped reading) stops.
            call.reset(RPCError(code: .cancelled, message: "the caller stopped reading the answer"))
            return result
        } catch {
            let gone = RPCError(code: .cancelled, message: "the caller went away")
            call.reset(gone)
            // A caller that left gets CANCELLED, as a reset stream gives it between processes,
            // not the "unexpected error" grpc-swift makes of whatever else a transport throws.
            if !(error is RPCError), error is CancellationError || Task.isCancelled { throw gone }
            throw error
        }
    }
}

/// A call the in-process server counts open, which its shutdown tells.
protocol InProcessOpenCall: AnyObject, Sendable {
    /// A graceful shutdown began: the call's RPC is cancelled (the handler may still finish).
    func cancelRPC()
    /// The server stopped: the call ends with `error`.
    func reset(_ error: RPCError)
}

/// One call's two streams and the handler's task, which a reset ends. The streams are pipes that
/// the reader's cancellation does not end: a call ends by its reset, which fails them with the
/// status the caller should see, so a caller that leaves gets CANCELLED rather than a stream that
/// just stopped (`AsyncThrowingStream` would end with no status, which grpc-swift reports as an
/// unexpected transport error).
private final class InProcessCall: InProcessOpenCall {
    private struct State {
        var task: Task<Void, Never>?
        var rpc: ServerContext.RPCCancellationHandle?
        var responsesFinished = false
        var statusSent = false
        var reset = false
    }

    let requests: AsyncPipe<RPCRequestPart<[UInt8]>>
    private let responses: AsyncPipe<RPCResponsePart<[UInt8]>>
    private let state = Mutex(State())

    init(requests: AsyncPipe<RPCRequestPart<[UInt8]>>, responses: AsyncPipe<RPCResponsePart<[UInt8]>>) {
        self.requests = requests
        self.responses = responses
    }

    func attach(task: Task<Void, Never>) {
        let wasReset = state.withLock { state in
            state.task = task
            return state.reset
        }
        if wasReset { task.cancel() }
    }

    func attach(rpc: ServerContext.RPCCancellationHandle) {
        let wasReset = state.withLock { state in
            state.rpc = rpc
            return state.reset
        }
        if wasReset { rpc.cancel() }
    }

    func yieldResponse(_ part: RPCResponsePart<[UInt8]>) throws {
        if case .status = part {
            // The answer is complete once its status is out: a caller that reads it and returns
            // before the handler closes its side must not reset a call that succeeded.
            state.withLock { $0.statusSent = true }
        }
        guard responses.yield(part) else { throw RPCError(code: .cancelled, message: "the caller went away") }
    }

    /// Tells the handler its RPC is cancelled (a graceful shutdown), leaving the streams open.
    func cancelRPC() {
        state.withLock { $0.rpc }?.cancel()
    }

    /// The server closed its answer (after the status, or failing).
    func finishResponses(throwing error: (any Error)? = nil) {
        let first = state.withLock { state in
            defer { state.responsesFinished = true }
            return !state.responsesFinished
        }
        guard first else { return }
        responses.finish(throwing: error)
    }

    /// Ends a call the server has not finished answering: its handler and RPC are cancelled, both
    /// streams fail with `error`. Nothing once the answer is complete.
    func reset(_ error: RPCError) {
        let ending = state.withLock { state -> (task: Task<Void, Never>?, rpc: ServerContext.RPCCancellationHandle?)? in
            guard !state.responsesFinished, !state.statusSent, !state.reset else { return nil }
            state.reset = true
            state.responsesFinished = true
            return (state.task, state.rpc)
        }
        guard let ending else { return }
        requests.finish(throwing: error)
        responses.finish(throwing: error)
        ending.rpc?.cancel()
        ending.task?.cancel()
    }
}

private struct RequestWriter: ClosableRPCWriterProtocol {
    typealias Element = RPCRequestPart<[UInt8]>
    let call: InProcessCall

    func write(_ element: Element) async throws {
        guard call.requests.yield(element) else { throw RPCError(code: .unavailable, message: "the in-process call is over") }
    }

    func write(contentsOf elements: some Sequence<Element>) async throws {
        for element in elements { try await write(element) }
    }

    func finish() async {
        call.requests.finish(throwing: nil)
    }

    /// As a stream reset between processes: the call ends for both sides.
    func finish(throwing error: any Error) async {
        call.reset(error as? RPCError ?? RPCError(code: .cancelled, message: "the caller reset the call"))
    }
}

private struct ResponseWriter: ClosableRPCWriterProtocol {
    typealias Element = RPCResponsePart<[UInt8]>
    let call: InProcessCall

    func write(_ element: Element) async throws {
        try call.yieldResponse(element)
    }

    func write(contentsOf elements: some Sequence<Element>) async throws {
        for element in elements { try call.yieldResponse(element) }
    }

    func finish() async {
        call.finishResponses()
    }

    func finish(throwing error: any Error) async {
        call.finishResponses(throwing: error)
    }
}

/// Set once; waiters return when it is.
private final class StopSignal: Sendable {
    private let state = Mutex<(stopped: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

    func signal() {
        let waiting = state.withLock { state in
            state.stopped = true
            defer { state.waiting = [] }
            return state.waiting
        }
        for waiter in waiting { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let stopped = state.withLock { state in
                if !state.stopped { state.waiting.append(continuation) }
                return state.stopped
            }
            if stopped { continuation.resume() }
        }
    }
}

/// One service's in-process connection: the server side goes to its `GRPCServer`, the client
/// side to the gateway's client.
public struct InProcessServiceLink: Sendable {
    public let name: String
    public let serverTransport = InProcessServerTransport()
    /// The server's services and interceptors, for `DirectUnaryCaller`.
    public let directTarget = DirectCallTarget()
    private let maxMessageBytes: Int

    public init(name: String, maxMessageBytes: Int = 4 << 20) {
        self.name = name
        self.maxMessageBytes = maxMessageBytes
    }

    /// A client transport of this link (each client shuts its own down).
    public func makeClientTransport() -> InProcessClientTransport {
        InProcessClientTransport(server: serverTransport, maxMessageBytes: maxMessageBytes)
    }
}

/// How a client reaches a service: over the network, or in this process.
public enum ServiceConnection: Sendable {
    case network(ServiceEndpoints)
    case inProcess(InProcessServiceLink, health: HealthStatus)

    /// The monitor `/health` reads for this service.
    public func healthMonitor(ejection: OutlierEjection? = nil, logger: Logger) -> InstanceHealthMonitor {
        switch self {
        case .network(let endpoints): InstanceHealthMonitor(endpoints: endpoints, ejection: ejection, logger: logger)
        case .inProcess(let link, let health): InstanceHealthMonitor(inProcess: link.name, health: health, logger: logger)
        }
    }
}
