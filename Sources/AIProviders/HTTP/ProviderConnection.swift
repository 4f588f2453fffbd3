import NIOCore
import NIOHTTP1

/// What went wrong on a provider connection, besides what NIO and TLS report.
enum ProviderHTTPError: Error, Equatable {
    case connectTimeout
    /// Nothing came from the provider for the read timeout.
    case readTimeout
    /// The connection closed before the answer was complete; `beforeAnswer` when not one byte of
    /// it had come (a reused connection the provider had just closed: the request can go again).
    case connectionClosed(beforeAnswer: Bool)
    case shutDown
    case invalidURL
}

/// One HTTP/1.1 connection to a provider: the last handler of its channel, one exchange at a
/// time, used on its event loop only. It stops asking the socket for more while the reader of a
/// body is behind (`ProviderResponseBody`), and closes the connection when an answer is not
/// read to its end. Its read timeout counts silence from the last byte, the start of an exchange
/// or the reader catching up, whichever came last: a connection kept idle in the pool for a while
/// does not shorten the next request's time, and a reader that was behind does not make the
/// provider look silent.
final class ProviderConnection: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    private final class Exchange {
        let number: UInt64
        /// Let go once completed: a future keeps its value, and the value holds the body.
        var answer: EventLoopPromise<ProviderHTTPResponse>?
        /// Held here until the answer's head hands it to the caller; weakly after, so that a body
        /// dropped unread is freed and closes the connection.
        var unanswered: ProviderResponseBody?
        weak var body: ProviderResponseBody?
        var answered = false
        var receivedBytes = false
        var keepAlive = true

        init(number: UInt64, answer: EventLoopPromise<ProviderHTTPResponse>, body: ProviderResponseBody) {
            self.number = number
            self.answer = answer
            self.unanswered = body
            self.body = body
        }
    }

    let origin: ProviderOrigin
    /// Told when an exchange ended with the connection reusable, and when the connection closed.
    private let released: (ProviderConnection) -> Void
    private let closed: (ProviderConnection) -> Void
    private var context: ChannelHandlerContext?
    private var exchange: Exchange?
    private var exchanges: UInt64 = 0
    private var failure: (any Error)?
    private var readingPaused = false
    private var readPending = false
    private var isClosed = false
    private let readTimeout: TimeAmount
    /// When silence last started to count: see the type's comment.
    private var lastHeard = NIODeadline.now()
    private var silenceCheck: Scheduled<Void>?

    init(
        origin: ProviderOrigin, readTimeout: TimeAmount,
        released: @escaping (ProviderConnection) -> Void, closed: @escaping (ProviderConnection) -> Void
    ) {
        self.origin = origin
        self.readTimeout = readTimeout
        self.released = released
        self.closed = closed
    }

    var isUsable: Bool { !isClosed && exchange == nil && (context?.channel.isActive ?? false) }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        lastHeard = .now()
        checkSilence(at: lastHeard + readTimeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        silenceCheck?.cancel()
        silenceCheck = nil
    }

    /// One timer per connection, moved on only when it fires, rather than one per read.
    private func checkSilence(at deadline: NIODeadline) {
        guard let context, !isClosed else { return }
        let connection = NIOLoopBound(self, eventLoop: context.eventLoop)
        silenceCheck = context.eventLoop.scheduleTask(deadline: deadline) { connection.value.silenceCheckFired() }
    }

    private func silenceCheckFired() {
        silenceCheck = nil
        // Not reading because the reader is behind: the silence is ours, not the provider's.
        if readingPaused {
            checkSilence(at: .now() + readTimeout)
            return
        }
        let deadline = lastHeard + readTimeout
        if deadline > .now() {
            checkSilence(at: deadline)
            return
        }
        // Silent for the read timeout: an exchange has timed out; an idle connection is dropped.
        if exchange != nil { failure = failure ?? ProviderHTTPError.readTimeout }
        close()
    }

    /// Sends `request`; `answer` succeeds with the head of the answer, or fails.
    func start(_ request: ProviderHTTPRequest, answer: EventLoopPromise<ProviderHTTPResponse>) {
        guard let context, !isClosed, exchange == nil else {
            answer.fail(ProviderHTTPError.connectionClosed(beforeAnswer: true))
            return
        }
        exchanges &+= 1
        let number = exchanges
        let body = ProviderResponseBody()
        exchange = Exchange(number: number, answer: answer, body: body)
        failure = nil
        lastHeard = .now()
        let connection = NIOLoopBound(self, eventLoop: context.eventLoop)
        let loop = context.eventLoop
        body.attach(ProviderResponseBody.Demand(
            resume: { loop.execute { connection.value.resumeReading() } },
            abandon: { loop.execute { connection.value.abandon(number) } }
        ))
        context.write(wrapOutboundOut(.head(request.head)), promise: nil)
        if request.body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(request.body))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let exchange else { return }
        exchange.receivedBytes = true
        lastHeard = .now()
        switch unwrapInboundIn(data) {
        case .head(let head):
            // 100 Continue and the like come before the answer.
            if head.status.code / 100 == 1, head.status.code != 101 { return }
            guard let body = exchange.unanswered else { return }
            exchange.answered = true
            exchange.unanswered = nil
            exchange.keepAlive = head.isKeepAlive
            let answer = exchange.answer
            exchange.answer = nil
            answer?.succeed(ProviderHTTPResponse(status: head.status, headers: head.headers, body: body))
        case .body(let buffer):
            if let body = exchange.body, !body.append(buffer) { readingPaused = true }
        case .end:
            self.exchange = nil
            exchange.body?.finish()
            if exchange.keepAlive, !isClosed {
                released(self)
            } else {
                close()
            }
        }
    }

    func read(context: ChannelHandlerContext) {
        if readingPaused {
            readPending = true
        } else {
            context.read()
        }
    }

    private func resumeReading() {
        readingPaused = false
        lastHeard = .now()
        guard readPending, let context else { return }
        readPending = false
        context.read()
    }

    /// The reader left before the end: the rest of the answer cannot be skipped, so the
    /// connection closes.
    private func abandon(_ number: UInt64) {
        guard exchange?.number == number else { return }
        failure = failure ?? CancellationError()
        close()
    }

    /// Cancels the exchange in flight, if any.
    func cancel() {
        guard exchange != nil else { return }
        failure = failure ?? CancellationError()
        close()
    }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        context?.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failure = failure ?? error
        close()
    }

    func channelInactive(context: ChannelHandlerContext) {
        isClosed = true
        silenceCheck?.cancel()
        silenceCheck = nil
        if let exchange {
            self.exchange = nil
            let error = failure ?? ProviderHTTPError.connectionClosed(beforeAnswer: !exchange.receivedBytes)
            if exchange.answered {
                exchange.body?.finish(throwing: error)
            } else {
                exchange.unanswered = nil
                let answer = exchange.answer
                exchange.answer = nil
                answer?.fail(error)
            }
        }
        closed(self)
        context.fireChannelInactive()
    }
}
