import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization

/// The platform's client transport: HTTP/2 over TCP between processes, or the in-process
/// transport inside `aisaas all`, with a deadline on every call.
///
/// grpc-swift keeps a deadline with a task group, a second task and a precise sleep per call,
/// which the gRPC bench measured at 30–50 µs of CPU per call, a tenth of what a call costs. Here
/// one `DeadlineWheel` per client keeps them all: at the deadline (give or take the wheel's
/// 50 ms) the stream is failed, which resets it, so the server's handler is cancelled too, and
/// the caller sees DEADLINE_EXCEEDED. The deadline counts from the moment the call has a stream;
/// waiting for a connection is bounded by the connection attempt (calls fail at once while no
/// instance is reachable), and a call to a pushed set with no instance in it (nothing registered,
/// a name that does not resolve) fails at once, UNAVAILABLE, instead of waiting for one. A call given its own `CallOptions.timeout` gets grpc-swift's deadline
/// as well; the earlier of the two ends it. In process, failing the stream resets the call in
/// the same way (`InProcessClientTransport`).
public struct ServiceClientTransport<Base: ClientTransport>: ClientTransport {
    public typealias Bytes = Base.Bytes

    private let base: Base
    private let callTimeout: Duration
    private let deadlines: DeadlineWheel
    /// Told each call's outcome (metrics, outlier ejection), read from the stream this transport
    /// already watches: no interceptor wrapping the response for it.
    private let observers: [any ClientCallObserver]
    /// Whether the instances of the service have any (nil: a fixed set, or a service in process).
    private let availability: (service: String, EndpointAvailability)?

    public init(
        _ base: Base, callTimeout: Duration, deadlines: DeadlineWheel = DeadlineWheel(),
        observers: [any ClientCallObserver] = [], availability: (service: String, EndpointAvailability)? = nil
    ) {
        self.base = base
        self.callTimeout = callTimeout
        self.deadlines = deadlines
        self.observers = observers
        self.availability = availability
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
    ) -> (@Sendable (RPCError.Code?, Bool) -> Void)? {
        guard !observers.isEmpty else { return nil }
        let observers = observers
        return { code, answered in
            for observer in observers { observer.callEnded(method: descriptor, peer: peer, code: code, answered: answered, started: started) }
        }
    }

    @concurrent public func withStream<T: Sendable>(
        descriptor: MethodDescriptor,
        options: CallOptions,
        _ closure: @concurrent (_ stream: RPCStream<Inbound, Outbound>, _ context: ClientContext) async throws -> T
    ) async throws -> T {
        let started = ContinuousClock.now
        if let (service, availability) = availability, availability.state != .available,
           let reason = await availability.unavailableReason(waitingAtMost: callTimeout) {
            throw RPCError(code: .unavailable, message: "\(service) cannot be called: \(reason)")
        }
        return try await base.withStream(descriptor: descriptor, options: options) { stream, context in
            let watch = StreamDeadline<Bytes>(
                outbound: stream.outbound, timeout: callTimeout, method: descriptor,
                report: reporter(descriptor, peer: context.remotePeer, started: started)
            )
            let ticket = deadlines.schedule(after: callTimeout) { await watch.expire() }
            defer {
                deadlines.cancel(ticket)
                watch.close()
            }
            let watched = RPCStream(
                descriptor: stream.descriptor,
                inbound: RPCAsyncSequence(wrapping: DeadlineInbound(base: stream.inbound, deadline: watch)),
                outbound: stream.outbound
            )
            return try await closure(watched, context)
        }
    }
}

/// The deadline of one stream.
private final class StreamDeadline<Bytes: GRPCContiguousBytes & Sendable>: Sendable {
    private enum Phase: UInt8, AtomicRepresentable {
        case open, expired, closed
    }

    private let phase = Atomic<Phase>(.open)
    private let outbound: RPCWriter<RPCRequestPart<Bytes>>.Closable
    /// Told the call's outcome once (nil: OK), and whether the peer answered it.
    private let report: (@Sendable (RPCError.Code?, Bool) -> Void)?
    private let reported = Atomic<Bool>(false)
    let error: RPCError

    init(
        outbound: RPCWriter<RPCRequestPart<Bytes>>.Closable, timeout: Duration, method: MethodDescriptor,
        report: (@Sendable (RPCError.Code?, Bool) -> Void)? = nil
    ) {
        self.outbound = outbound
        self.report = report
        self.error = RPCError(code: .deadlineExceeded, message: "\(method.fullyQualifiedMethod) did not finish within its deadline of \(timeout)")
    }

    var hasExpired: Bool { phase.load(ordering: .acquiring) == .expired }

    /// The status the peer sent.
    func sawStatus(_ code: Status.Code) {
        reportOnce(RPCError.Code(code), answered: true)
    }

    func reportOnce(_ code: RPCError.Code?, answered: Bool = false) {
        guard let report, !reported.exchange(true, ordering: .acquiringAndReleasing) else { return }
        report(code, answered)
    }

    /// Fails the stream (the transport then resets it), unless the call is already over.
    func expire() async {
        guard phase.compareExchange(expected: .open, desired: .expired, ordering: .acquiringAndReleasing).exchanged else { return }
        await outbound.finish(throwing: error)
    }

    /// The call is over.
    func close() {
        // Ended without a status: the caller left, or the stream failed before one came.
        reportOnce(hasExpired ? .deadlineExceeded : .cancelled)
        _ = phase.compareExchange(expected: .open, desired: .closed, ordering: .acquiringAndReleasing)
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
                let part = try await base.next(isolation: #isolation)
                if case .status(let status, _)? = part {
                    if status.code != .ok, deadline.hasExpired {
                        deadline.reportOnce(.deadlineExceeded)
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
