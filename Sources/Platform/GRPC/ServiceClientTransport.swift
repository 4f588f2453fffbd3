import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization

/// The platform's client transport: HTTP/2 over TCP between processes, or grpc-swift's
/// in-process transport inside `aisaas all`, with a deadline on every call.
///
/// grpc-swift keeps a deadline with a task group, a second task and a precise sleep per call,
/// which the gRPC bench measured at 30–50 µs of CPU per call, a tenth of what a call costs. Here
/// one `DeadlineWheel` per client keeps them all: at the deadline (give or take the wheel's
/// 50 ms) the stream is failed, which resets it, so the server's handler is cancelled too, and
/// the caller sees DEADLINE_EXCEEDED. The deadline counts from the moment the call has a stream;
/// waiting for a connection is bounded by the connection attempt (calls fail at once while no
/// instance is reachable). A call given its own `CallOptions.timeout` gets grpc-swift's deadline
/// as well; the earlier of the two ends it.
///
/// In process there is no stream to reset: a caller that leaves, or a deadline that passes,
/// cancels the server's handler through `InProcessCalls` instead.
public struct ServiceClientTransport<Base: ClientTransport>: ClientTransport {
    public typealias Bytes = Base.Bytes

    private let base: Base
    private let callTimeout: Duration
    private let deadlines: DeadlineWheel
    private let inProcessCalls: InProcessCalls?
    /// Told each call's outcome (metrics, outlier ejection), read from the stream this transport
    /// already watches: no interceptor wrapping the response for it.
    private let observers: [any ClientCallObserver]

    public init(
        _ base: Base, callTimeout: Duration, deadlines: DeadlineWheel = DeadlineWheel(), inProcessCalls: InProcessCalls? = nil,
        observers: [any ClientCallObserver] = []
    ) {
        self.base = base
        self.callTimeout = callTimeout
        self.deadlines = deadlines
        self.inProcessCalls = inProcessCalls
        self.observers = observers
    }

    public var retryThrottle: RetryThrottle? { base.retryThrottle }

    public func connect() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await deadlines.run() }
            try await base.connect()
            group.cancelAll()
        }
    }

    public func beginGracefulShutdown() {
        base.beginGracefulShutdown()
    }

    public func config(forMethod descriptor: MethodDescriptor) -> MethodConfig? {
        base.config(forMethod: descriptor)
    }

    /// What tells the observers how a call ended; nil without observers.
    private func reporter(
        _ descriptor: MethodDescriptor, peer: String, started: ContinuousClock.Instant
    ) -> (@Sendable (RPCError.Code?) -> Void)? {
        guard !observers.isEmpty else { return nil }
        let observers = observers
        return { code in
            for observer in observers { observer.callEnded(method: descriptor, peer: peer, code: code, started: started) }
        }
    }

    public func withStream<T: Sendable>(
        descriptor: MethodDescriptor,
        options: CallOptions,
        _ closure: (_ stream: RPCStream<Inbound, Outbound>, _ context: ClientContext) async throws -> T
    ) async throws -> T {
        let started = ContinuousClock.now
        return try await base.withStream(descriptor: descriptor, options: options) { stream, context in
            let call = inProcessCalls?.open()
            let watch = StreamDeadline<Bytes>(
                outbound: stream.outbound, timeout: callTimeout, method: descriptor, inProcessCall: call, calls: inProcessCalls,
                report: reporter(descriptor, peer: context.remotePeer, started: started)
            )
            let ticket = deadlines.schedule(after: callTimeout) { await watch.expire() }
            defer {
                deadlines.cancel(ticket)
                watch.close()
            }
            let outbound: Outbound
            if let call {
                outbound = RPCWriter.Closable(wrapping: CallStampingWriter(base: stream.outbound, call: call))
            } else {
                outbound = stream.outbound
            }
            let watched = RPCStream(
                descriptor: stream.descriptor,
                inbound: RPCAsyncSequence(wrapping: DeadlineInbound(base: stream.inbound, deadline: watch)),
                outbound: outbound
            )
            return try await closure(watched, context)
        }
    }
}

/// The deadline of one stream, and whether its final status arrived.
private final class StreamDeadline<Bytes: GRPCContiguousBytes & Sendable>: Sendable {
    private enum Phase: UInt8, AtomicRepresentable {
        case open, expired, closed
    }

    private let phase = Atomic<Phase>(.open)
    private let statusArrived = Atomic<Bool>(false)
    private let outbound: RPCWriter<RPCRequestPart<Bytes>>.Closable
    private let inProcessCall: InProcessCalls.CallID?
    private let calls: InProcessCalls?
    /// Told the call's outcome once (nil: OK).
    private let report: (@Sendable (RPCError.Code?) -> Void)?
    private let reported = Atomic<Bool>(false)
    let error: RPCError

    init(
        outbound: RPCWriter<RPCRequestPart<Bytes>>.Closable, timeout: Duration, method: MethodDescriptor,
        inProcessCall: InProcessCalls.CallID?, calls: InProcessCalls?, report: (@Sendable (RPCError.Code?) -> Void)? = nil
    ) {
        self.outbound = outbound
        self.inProcessCall = inProcessCall
        self.calls = calls
        self.report = report
        self.error = RPCError(code: .deadlineExceeded, message: "\(method.fullyQualifiedMethod) did not finish within its deadline of \(timeout)")
    }

    var hasExpired: Bool { phase.load(ordering: .acquiring) == .expired }

    func sawStatus(_ code: Status.Code) {
        statusArrived.store(true, ordering: .releasing)
        reportOnce(RPCError.Code(code))
    }

    func reportOnce(_ code: RPCError.Code?) {
        guard let report, !reported.exchange(true, ordering: .acquiringAndReleasing) else { return }
        report(code)
    }

    /// Fails the stream (the transport then resets it), unless the call is already over.
    func expire() async {
        guard phase.compareExchange(expected: .open, desired: .expired, ordering: .acquiringAndReleasing).exchanged else { return }
        if let inProcessCall { calls?.end(inProcessCall, completed: false) }
        await outbound.finish(throwing: error)
    }

    /// The call is over; in process, a server still at work on it is told to stop.
    func close() {
        // Ended without a status: the caller left, or the stream failed before one came.
        reportOnce(hasExpired ? .deadlineExceeded : .cancelled)
        _ = phase.compareExchange(expected: .open, desired: .closed, ordering: .acquiringAndReleasing)
        if let inProcessCall { calls?.end(inProcessCall, completed: statusArrived.load(ordering: .acquiring)) }
    }
}

/// A stream's responses, where the failure its deadline caused reads as DEADLINE_EXCEEDED (the
/// transport reports a stream failed from this side as UNAVAILABLE, which callers may retry).
private struct DeadlineInbound<Bytes: GRPCContiguousBytes & Sendable>: AsyncSequence, Sendable {
    typealias Element = RPCResponsePart<Bytes>
    typealias Failure = any Error

    let base: RPCAsyncSequence<RPCResponsePart<Bytes>, any Error>
    let deadline: StreamDeadline<Bytes>

    func makeAsyncIterator() -> Iterator {
        Iterator(base: base.makeAsyncIterator(), deadline: deadline)
    }

    struct Iterator: AsyncIteratorProtocol {
        var base: RPCAsyncSequence<RPCResponsePart<Bytes>, any Error>.AsyncIterator
        let deadline: StreamDeadline<Bytes>
        var finished = false

        mutating func next() async throws -> Element? {
            if finished { return nil }
            do {
                let part = try await base.next()
                if case .status(let status, _)? = part {
                    if status.code != .ok, deadline.hasExpired {
                        deadline.sawStatus(.deadlineExceeded)
                        finished = true
                        return .status(Status(code: .deadlineExceeded, message: deadline.error.message), [:])
                    }
                    deadline.sawStatus(status.code)
                }
                return part
            } catch {
                if deadline.hasExpired {
                    deadline.reportOnce(.deadlineExceeded)
                    throw deadline.error
                }
                deadline.reportOnce((error as? RPCError)?.code ?? .unknown)
                throw error
            }
        }
    }
}
