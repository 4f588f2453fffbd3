import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization

/// The platform's client transport: HTTP/2 over TCP, with a deadline on every call.
///
/// grpc-swift keeps a deadline with a task group, a second task and a precise sleep per call,
/// which the gRPC bench measured at 30–50 µs of CPU per call, a tenth of what a call costs. Here
/// one `DeadlineWheel` per client keeps them all: at the deadline (give or take the wheel's
/// 50 ms) the stream is failed, which resets it, so the server's handler is cancelled too, and
/// the caller sees DEADLINE_EXCEEDED. The deadline counts from the moment the call has a stream;
/// waiting for a connection is bounded by the connection attempt (calls fail at once while no
/// instance is reachable). A call given its own `CallOptions.timeout` gets grpc-swift's deadline
/// as well; the earlier of the two ends it.
public struct ServiceClientTransport: ClientTransport {
    public typealias Bytes = GRPCNIOTransportBytes

    private let base: HTTP2ClientTransport.Posix
    private let callTimeout: Duration
    private let deadlines: DeadlineWheel

    public init(_ base: HTTP2ClientTransport.Posix, callTimeout: Duration, deadlines: DeadlineWheel = DeadlineWheel()) {
        self.base = base
        self.callTimeout = callTimeout
        self.deadlines = deadlines
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

    public func withStream<T: Sendable>(
        descriptor: MethodDescriptor,
        options: CallOptions,
        _ closure: (_ stream: RPCStream<Inbound, Outbound>, _ context: ClientContext) async throws -> T
    ) async throws -> T {
        try await base.withStream(descriptor: descriptor, options: options) { stream, context in
            let watch = StreamDeadline(outbound: stream.outbound, timeout: callTimeout, method: descriptor)
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
private final class StreamDeadline: Sendable {
    private enum Phase: UInt8, AtomicRepresentable {
        case open, expired, closed
    }

    private let phase = Atomic<Phase>(.open)
    private let outbound: ServiceClientTransport.Outbound
    let error: RPCError

    init(outbound: ServiceClientTransport.Outbound, timeout: Duration, method: MethodDescriptor) {
        self.outbound = outbound
        self.error = RPCError(code: .deadlineExceeded, message: "\(method.fullyQualifiedMethod) did not finish within its deadline of \(timeout)")
    }

    var hasExpired: Bool { phase.load(ordering: .acquiring) == .expired }

    /// Fails the stream (the transport then resets it), unless the call is already over.
    func expire() async {
        guard phase.compareExchange(expected: .open, desired: .expired, ordering: .acquiringAndReleasing).exchanged else { return }
        await outbound.finish(throwing: error)
    }

    func close() {
        _ = phase.compareExchange(expected: .open, desired: .closed, ordering: .acquiringAndReleasing)
    }
}

/// A stream's responses, where the failure its deadline caused reads as DEADLINE_EXCEEDED (the
/// transport reports a stream failed from this side as UNAVAILABLE, which callers may retry).
private struct DeadlineInbound: AsyncSequence, Sendable {
    typealias Element = RPCResponsePart<GRPCNIOTransportBytes>
    typealias Failure = any Error

    let base: ServiceClientTransport.Inbound
    let deadline: StreamDeadline

    func makeAsyncIterator() -> Iterator {
        Iterator(base: base.makeAsyncIterator(), deadline: deadline)
    }

    struct Iterator: AsyncIteratorProtocol {
        var base: ServiceClientTransport.Inbound.AsyncIterator
        let deadline: StreamDeadline
        var finished = false

        mutating func next() async throws -> Element? {
            if finished { return nil }
            do {
                let part = try await base.next()
                if case .status(let status, _)? = part, status.code != .ok, deadline.hasExpired {
                    finished = true
                    return .status(Status(code: .deadlineExceeded, message: deadline.error.message), [:])
                }
                return part
            } catch {
                if deadline.hasExpired { throw deadline.error }
                throw error
            }
        }
    }
}
