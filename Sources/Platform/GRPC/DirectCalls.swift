import GRPCCore
import ServiceLifecycle
import Synchronization

/// What a service in this process offers to direct calls: its RPC services and the interceptors
/// its server runs, published by `GRPCServiceProcess` on the service's `InProcessServiceLink`.
public final class DirectCallTarget: Sendable {
    private let published = Mutex<(services: [any RegistrableRPCService], interceptors: [any ServerInterceptor])?>(nil)

    init() {}

    func publish(services: [any RegistrableRPCService], interceptors: [any ServerInterceptor]) {
        published.withLock { $0 = (services, interceptors) }
    }

    /// The published service that is a `Service` (a generated `StreamingServiceProtocol`), with the
    /// server's interceptors; nil before the service has been published.
    func service<Service>(as type: Service.Type) -> (service: Service, interceptors: [any ServerInterceptor])? {
        guard let published = published.withLock({ $0 }) else { return nil }
        for service in published.services {
            if let typed = service as? Service { return (typed, published.interceptors) }
        }
        return nil
    }
}

/// Unary calls to a service of this process without a transport: the client's interceptors run in
/// the caller's task, the server's interceptors and the handler in a task of their own on the
/// caller's event loop, and the messages pass as values, neither serialized nor streamed.
///
/// A call through `InProcessClientTransport` costs two pipes and grpc-swift's client and server
/// executors (a task group each, a task per stream side) besides the handler's task: on the
/// benchmark machine, about a third of the CPU of a `GET /user/current` (bench/README.md). What
/// a call sees is the same as through the transport: the interceptors on both sides; the statuses
/// (an error the server throws that is not an `RPCError` is UNKNOWN, an interceptor's error ends
/// the call with its status, a service that is not there is UNIMPLEMENTED, only code, message and
/// trailers reach the caller); the server's readiness and graceful shutdown (calls wait for it to
/// listen, within their deadline, are refused once it stops, and are counted open until their
/// handler returns); the deadline, a caller that leaves and a server that stops, each of which ends
/// the call at once and cancels its handler; and the client's call metrics. Unlike the transport,
/// the metrics and the client's span also count calls the server refused or a client interceptor
/// failed.
public struct DirectUnaryCaller: Sendable {
    static let peer = "in-process"
    private let server: InProcessServerTransport
    private let target: DirectCallTarget
    private let interceptors: [any ClientInterceptor]
    private let callTimeout: Duration
    private let deadlines: DeadlineWheel
    private let observers: [any ClientCallObserver]

    public init(
        _ link: InProcessServiceLink, callTimeout: Duration, interceptors: [any ClientInterceptor] = [RequestScopeClientInterceptor()],
        observers: [any ClientCallObserver] = [], deadlines: DeadlineWheel = DeadlineWheel()
    ) {
        server = link.serverTransport
        target = link.directTarget
        self.interceptors = interceptors
        self.callTimeout = callTimeout
        self.deadlines = deadlines
        self.observers = observers
    }

    /// Keeps the calls' deadlines while the process runs.
    public var service: any Service { DeadlineWheelService(wheel: deadlines) }

    /// Calls `method` of the published `Service` with `request`, as the generated client would
    /// through a transport, and hands the answer to `onResponse`.
    public func unary<Service: Sendable, Input: Sendable, Output: Sendable, Result: Sendable>(
        _ request: ClientRequest<Input>,
        method: MethodDescriptor,
        options: CallOptions,
        of service: Service.Type,
        handler: @escaping @Sendable (Service, StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>,
        onResponse: @concurrent @Sendable @escaping (ClientResponse<Output>) async throws -> Result
    ) async throws -> Result {
        let started = ContinuousClock.now
        let message = request.message
        let streaming = StreamingClientRequest<Input>(metadata: request.metadata) { writer in try await writer.write(message) }
        let context = ClientContext(descriptor: method, remotePeer: Self.peer, localPeer: Self.peer)
        let timeout = options.timeout.map { min($0, callTimeout) } ?? callTimeout
        let deadline = DirectDeadline(method: method, timeout: timeout, started: started)
        let outcome = DirectCallOutcome()
        let response = await intercepting(streaming, context: context, outcome: outcome, interceptors: interceptors[...]) { request, context in
            await serve(request, method: method, service: service, handler: handler, deadline: deadline, outcome: outcome)
        }
        let answer = await ClientResponse(collecting: response)
        let (code, answered) = outcome.ended(with: answer)
        for observer in observers { observer.callEnded(method: method, peer: Self.peer, code: code, answered: answered, started: started) }
        return try await onResponse(answer)
    }

    /// The client's interceptors, outermost first; an error one throws becomes the call's status.
    private func intercepting<Input: Sendable, Output: Sendable>(
        _ request: StreamingClientRequest<Input>,
        context: ClientContext,
        outcome: DirectCallOutcome,
        interceptors: ArraySlice<any ClientInterceptor>,
        finally: @escaping @Sendable (StreamingClientRequest<Input>, ClientContext) async -> StreamingClientResponse<Output>
    ) async -> StreamingClientResponse<Output> {
        guard let interceptor = interceptors.first else { return await finally(request, context) }
        let rest = interceptors.dropFirst()
        do {
            return try await interceptor.intercept(request: request, context: context) { request, context in
                await intercepting(request, context: context, outcome: outcome, interceptors: rest, finally: finally)
            }
        } catch {
            // `finally` never throws: this is the interceptor's own error, not the server's answer.
            outcome.endedHere()
            return StreamingClientResponse(error: RPCError(converting: error))
        }
    }

    /// The server's side of a call: counted open on the server until its handler returns, the
    /// server's interceptors and the handler in a task of their own on the caller's event loop
    /// (so that the deadline, a reset or the caller leaving end the call at once, as a reset
    /// stream does, and cancel the handler), the answer collected.
    private func serve<Service: Sendable, Input: Sendable, Output: Sendable>(
        _ request: StreamingClientRequest<Input>,
        method: MethodDescriptor,
        service: Service.Type,
        handler: @escaping @Sendable (Service, StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>,
        deadline: DirectDeadline,
        outcome: DirectCallOutcome
    ) async -> StreamingClientResponse<Output> {
        let call = DirectCall<Output>()
        let callID: UInt64
        do {
            if server.isListening {
                (_, callID) = try await server.openCall(call)
            } else {
                // Waiting for the server to listen counts against the deadline too.
                (_, callID) = try await withTimeLimit(deadline.remaining) { [server] in try await server.openCall(call) }
            }
        } catch {
            outcome.endedHere()
            return StreamingClientResponse(error: error is TimeLimitExceeded ? deadline.error : RPCError(converting: error))
        }
        let messages: [Input]
        do {
            let collected = Collected<Input>()
            try await request.producer(RPCWriter(wrapping: collected))
            messages = collected.elements
        } catch {
            server.closeCall(callID)
            // As a client whose request stream fails resets its call.
            outcome.endedHere()
            return StreamingClientResponse(error: RPCError(code: .cancelled, message: "the caller failed its request: \(error)"))
        }
        guard let (target, serverInterceptors) = target.service(as: service) else {
            server.closeCall(callID)
            return StreamingClientResponse(error: RPCError(code: .unimplemented, message: "Requested RPC '\(method)' is not implemented."))
        }
        if Task.isCancelled { call.end(RPCError(code: .cancelled, message: "the caller went away")) }
        if let ended = call.answerIfEnded {
            // Ended before it began (the caller left, the server stopped): the handler never runs.
            server.closeCall(callID)
            outcome.endedHere()
            return ended
        }
        let server = self.server
        let metadata = request.metadata
        call.attach(task: Task.onCurrentLoop {
            let response = await withServerContextRPCCancellationHandle { handle in
                call.attach(rpc: handle)
                let context = ServerContext(descriptor: method, remotePeer: Self.peer, localPeer: Self.peer, cancellation: handle)
                let serverRequest = StreamingServerRequest(metadata: metadata, messages: RPCAsyncSequence(wrapping: ListedParts(messages)))
                let response: StreamingServerResponse<Output>
                do {
                    response = try await intercepting(serverRequest, context: context, interceptors: serverInterceptors[...]) { request, context in
                        try await handler(target, request, context)
                    }
                } catch {
                    response = StreamingServerResponse(error: RPCError(converting: error, unknownMessage: "Service method threw an unknown error."))
                }
                return await Self.answer(response)
            }
            call.answer(response, answered: true)
            server.closeCall(callID)
        })
        let ticket = deadlines.schedule(after: deadline.remaining) { call.end(deadline.error) }
        defer { deadlines.cancel(ticket) }
        let (response, answered) = await withTaskCancellationHandler {
            await call.response
        } onCancel: {
            call.end(RPCError(code: .cancelled, message: "the caller went away"))
        }
        if !answered { outcome.endedHere() }
        return response
    }

    /// The server's interceptors, outermost first, as grpc-swift's server runs them: an error an
    /// interceptor throws becomes its answer; the handler's goes to the interceptor around it.
    private func intercepting<Input: Sendable, Output: Sendable>(
        _ request: StreamingServerRequest<Input>,
        context: ServerContext,
        interceptors: ArraySlice<any ServerInterceptor>,
        handler: @escaping @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        guard let interceptor = interceptors.first else { return try await handler(request, context) }
        let rest = interceptors.dropFirst()
        do {
            return try await interceptor.intercept(request: request, context: context) { request, context in
                try await intercepting(request, context: context, interceptors: rest, handler: handler)
            }
        } catch {
            return StreamingServerResponse(error: RPCError(converting: error))
        }
    }

    /// The answer as the client reads it: the messages the response's producer writes, then its
    /// trailers, or the status it failed with.
    private static func answer<Output: Sendable>(_ response: StreamingServerResponse<Output>) async -> StreamingClientResponse<Output> {
        switch response.accepted {
        case .failure(let error):
            return StreamingClientResponse(error: RPCError(onTheWire: error))
        case .success(let contents):
            let collected = Collected<Output>()
            var parts: [StreamingClientResponse<Output>.Contents.BodyPart]
            var failure: RPCError?
            do {
                let trailers = try await contents.producer(RPCWriter(wrapping: collected))
                parts = collected.elements.map { .message($0) }
                parts.append(.trailingMetadata(trailers))
            } catch {
                parts = collected.elements.map { .message($0) }
                failure = RPCError(onTheWire: RPCError(converting: error))
            }
            let body = RPCAsyncSequence<StreamingClientResponse<Output>.Contents.BodyPart, any Error>(wrapping: ListedParts(parts, failure: failure))
            return StreamingClientResponse(accepted: .success(.init(metadata: contents.metadata, bodyParts: body)))
        }
    }
}

extension ClientResponse {
    /// The single message of a unary call's answer, as grpc-swift reads one from a stream.
    init(collecting response: StreamingClientResponse<Message>) async {
        switch response.accepted {
        case .failure(let error):
            self.init(of: Message.self, error: error)
        case .success(let contents):
            var parts: [StreamingClientResponse<Message>.Contents.BodyPart] = []
            do {
                for try await part in contents.bodyParts { parts.append(part) }
            } catch let error as RPCError {
                self.init(accepted: .success(Contents(metadata: contents.metadata, error: error)))
                return
            } catch {
                self.init(of: Message.self, error: RPCError(code: .unknown, message: String(describing: error)))
                return
            }
            switch (parts.first, parts.dropFirst().first, parts.count) {
            case (.message(let message)?, .trailingMetadata(let trailers)?, 2):
                self.init(message: message, metadata: contents.metadata, trailingMetadata: trailers)
            case (.message?, .message?, _):
                self.init(of: Message.self, error: RPCError(code: .unimplemented, message: "Multiple messages received, but only one is expected."))
            case (.trailingMetadata?, nil, 1):
                self.init(of: Message.self, error: RPCError(code: .unimplemented, message: "No messages received, exactly one was expected."))
            default:
                self.init(of: Message.self, error: RPCError(code: .internalError, message: "The answer of the call is invalid: \(parts.count) parts."))
            }
        }
    }
}

extension RPCError {
    /// `error` as a status: itself, converted, or UNKNOWN.
    init(converting error: any Error, unknownMessage: String = "") {
        switch error {
        case let rpc as RPCError: self = rpc
        case let convertible as any RPCErrorConvertible: self.init(convertible)
        default: self.init(code: .unknown, message: unknownMessage, cause: error)
        }
    }

    /// The status as a client in another process receives it: code, message and trailers, not the
    /// server's underlying error.
    init(onTheWire error: RPCError) {
        self.init(code: error.code, message: error.message, metadata: error.metadata)
    }
}

/// When a direct call must be over, counted from its start.
private struct DirectDeadline: Sendable {
    private let method: MethodDescriptor
    private let timeout: Duration
    private let due: ContinuousClock.Instant

    init(method: MethodDescriptor, timeout: Duration, started: ContinuousClock.Instant) {
        self.method = method
        self.timeout = timeout
        due = started + timeout
    }

    var remaining: Duration { max(.zero, due - .now) }

    var error: RPCError {
        RPCError(code: .deadlineExceeded, message: "\(method.fullyQualifiedMethod) did not finish within its deadline of \(timeout)")
    }
}

/// How a direct call ended, for the client's call observers.
private final class DirectCallOutcome: Sendable {
    /// The server refused it, or it ended on this side (deadline, reset): not answered.
    private let unanswered = Atomic<Bool>(false)

    func endedHere() { unanswered.store(true, ordering: .relaxed) }

    func ended<Message>(with response: ClientResponse<Message>) -> (code: RPCError.Code?, answered: Bool) {
        let answered = !unanswered.load(ordering: .relaxed)
        switch response.accepted {
        case .success(let contents):
            if case .failure(let error) = contents.message { return (error.code, answered) }
            return (nil, answered)
        case .failure(let error):
            return (error.code, answered)
        }
    }
}

/// One direct call as the server counts it open: the handler's task and its RPC, and the answer
/// its caller waits for, which comes from the handler or, first, from the call's end on this side
/// (the deadline, the caller leaving, the server stopping), which cancels the handler.
private final class DirectCall<Output: Sendable>: InProcessOpenCall {
    typealias Answer = (response: StreamingClientResponse<Output>, answered: Bool)

    private struct State {
        var task: Task<Void, Never>?
        var rpc: ServerContext.RPCCancellationHandle?
        var answer: Answer?
        var waiting: CheckedContinuation<Answer, Never>?
        /// Ended on this side: the handler is cancelled as soon as it is there.
        var ended = false
    }

    private let state = Mutex(State())

    func attach(task: Task<Void, Never>) {
        let ended = state.withLock { state in
            state.task = task
            return state.ended
        }
        if ended { task.cancel() }
    }

    func attach(rpc: ServerContext.RPCCancellationHandle) {
        let ended = state.withLock { state in
            state.rpc = rpc
            return state.ended
        }
        if ended { rpc.cancel() }
    }

    /// The answer, once there is one.
    var response: Answer {
        get async {
            await withCheckedContinuation { continuation in
                let answer = state.withLock { state -> Answer? in
                    if state.answer == nil { state.waiting = continuation }
                    return state.answer
                }
                if let answer { continuation.resume(returning: answer) }
            }
        }
    }

    /// The answer of a call that ended on this side before its handler was started.
    var answerIfEnded: StreamingClientResponse<Output>? {
        state.withLock { $0.ended ? $0.answer?.response : nil }
    }

    /// The first answer stands.
    func answer(_ response: StreamingClientResponse<Output>, answered: Bool) {
        let waiting = state.withLock { state -> CheckedContinuation<Answer, Never>? in
            guard state.answer == nil else { return nil }
            state.answer = (response, answered)
            defer { state.waiting = nil }
            return state.waiting
        }
        waiting?.resume(returning: (response, answered))
    }

    /// Ends the call with `error` unless it has its answer, cancelling the handler.
    func end(_ error: RPCError) {
        let running = state.withLock { state -> (Task<Void, Never>?, ServerContext.RPCCancellationHandle?)? in
            guard state.answer == nil else { return nil }
            state.ended = true
            return (state.task, state.rpc)
        }
        guard let (task, rpc) = running else { return }
        answer(StreamingClientResponse(error: error), answered: false)
        rpc?.cancel()
        task?.cancel()
    }

    func cancelRPC() {
        state.withLock { $0.rpc }?.cancel()
    }

    func reset(_ error: RPCError) {
        end(error)
    }
}

/// What a producer writes, kept.
private final class Collected<Element: Sendable>: RPCWriterProtocol {
    private let kept = Mutex<[Element]>([])

    var elements: [Element] { kept.withLock { $0 } }

    func write(_ element: Element) async throws {
        kept.withLock { $0.append(element) }
    }

    func write(contentsOf elements: some Sequence<Element>) async throws {
        kept.withLock { $0.append(contentsOf: elements) }
    }
}

/// Elements known in advance, then the end or a failure.
private struct ListedParts<Element: Sendable>: AsyncSequence, Sendable {
    typealias Failure = any Error
    let elements: [Element]
    let failure: RPCError?

    init(_ elements: [Element], failure: RPCError? = nil) {
        self.elements = elements
        self.failure = failure
    }

    func makeAsyncIterator() -> Iterator {
        Iterator(elements: elements, failure: failure)
    }

    struct Iterator: AsyncIteratorProtocol {
        let elements: [Element]
        var failure: RPCError?
        var index = 0

        mutating func next() async throws -> Element? {
            if index < elements.count {
                defer { index += 1 }
                return elements[index]
            }
            if let failure {
                self.failure = nil
                throw failure
            }
            return nil
        }
    }
}

/// Runs a deadline wheel until the process stops.
private struct DeadlineWheelService: Service {
    let wheel: DeadlineWheel

    func run() async throws {
        await cancelWhenGracefulShutdown { await wheel.run() }
    }
}
