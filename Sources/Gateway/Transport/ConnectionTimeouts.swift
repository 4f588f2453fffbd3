import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import Platform

/// How long the gateway waits for a client, and how many clients it serves at once.
public struct HTTPServerLimits: Sendable, Equatable {
    /// From the first byte of a request (or the connection's opening) until its head is complete
    /// (`HTTP_HEADER_TIMEOUT_SECONDS`): a client that sends half a request line is dropped.
    public var headerTimeout: Duration
    /// The longest pause while a request body arrives (`HTTP_READ_TIMEOUT_SECONDS`).
    public var bodyReadTimeout: Duration
    /// How long a keep-alive connection may wait for its next request (`HTTP_IDLE_TIMEOUT_SECONDS`).
    public var idleTimeout: Duration
    /// Connections served at once (`HTTP_MAX_CONNECTIONS`); beyond it new ones wait in the
    /// listen backlog until one closes.
    public var maxConnections: Int

    public init(headerTimeout: Duration = .seconds(10), bodyReadTimeout: Duration = .seconds(30), idleTimeout: Duration = .seconds(75), maxConnections: Int = 4096) {
        self.headerTimeout = headerTimeout
        self.bodyReadTimeout = bodyReadTimeout
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections
    }
}

/// The timers of one connection. Owned by its two handlers (`RawBytesWatch` before the HTTP
/// decoder, `RequestPartsWatch` after it) and used on the connection's event loop only.
final class ConnectionTimeouts {
    private enum Phase {
        /// Between requests, nothing received yet: the idle timer runs.
        case idle
        /// Bytes of a request have come, its head is not complete: the header timer runs.
        case readingHead
        /// The head is in, the body is arriving: the read timer runs from the last part.
        case readingBody
        /// The request is in (or was abandoned by the handler): no timer until the response ends.
        case responding
    }

    private let limits: HTTPServerLimits
    private var phase = Phase.idle
    /// Requests whose head arrived and whose response has not ended (pipelined ones included).
    private(set) var openRequests = 0
    /// A request's head arrived and its end has not.
    private(set) var requestInputOpen = false
    private var responseStarted = false
    private var timer: Scheduled<Void>?
    /// When `timer` fires.
    private var timerDue = NIODeadline.uptimeNanoseconds(0)
    /// When the current phase runs out; nil while responding.
    private var deadline: NIODeadline?
    private var context: ChannelHandlerContext?

    init(limits: HTTPServerLimits) {
        self.limits = limits
    }

    /// The raw-bytes handler's context: timeouts write and close from the front of the pipeline.
    func attach(_ context: ChannelHandlerContext) {
        self.context = context
        arm(.idle)
    }

    func detach() {
        timer?.cancel()
        timer = nil
        context = nil
    }

    func bytesArrived() {
        if phase == .idle { arm(.readingHead) }
    }

    func headArrived() {
        openRequests += 1
        requestInputOpen = true
        if openRequests == 1 { responseStarted = false }
        arm(.readingBody)
    }

    func bodyPartArrived() {
        if phase == .readingBody { arm(.readingBody) }
    }

    func endArrived() {
        requestInputOpen = false
        if phase == .readingBody { arm(.responding) }
    }

    func responseHeadSent() {
        responseStarted = true
    }

    func responseEnded() {
        openRequests = max(0, openRequests - 1)
        responseStarted = false
        if openRequests == 0, phase == .responding { arm(.idle) }
    }

    /// Each phase moves the deadline; the one timer is moved only when the new deadline comes
    /// before it. When it fires early (the deadline moved on) it is set again for the deadline.
    /// Scheduling and cancelling an event-loop task at every phase, four times a request, cost
    /// about 3 µs of CPU per `GET /user/current` on the benchmark machine.
    private func arm(_ next: Phase) {
        phase = next
        guard context != nil else { return }
        let delay: Duration
        switch next {
        case .idle: delay = limits.idleTimeout
        case .readingHead: delay = limits.headerTimeout
        case .readingBody: delay = limits.bodyReadTimeout
        case .responding:
            deadline = nil
            return
        }
        let due = NIODeadline.now() + TimeAmount(delay)
        deadline = due
        if timer != nil, timerDue <= due { return }
        schedule(at: due)
    }

    private func schedule(at due: NIODeadline) {
        guard let context else { return }
        timer?.cancel()
        timerDue = due
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: due) { [self] in
            timerFired()
        }
    }

    private func timerFired() {
        timer = nil
        // Responding: no deadline until the response ends.
        guard context != nil, let deadline else { return }
        if deadline > .now() {
            schedule(at: deadline)
        } else {
            expire()
        }
    }

    private func expire() {
        guard let context else { return }
        switch phase {
        case .idle, .responding:
            context.close(promise: nil)
        case .readingHead:
            Self.answerTimeout(context, message: "the request head did not arrive within \(limits.headerTimeout)")
        case .readingBody:
            if responseStarted {
                context.close(promise: nil)
            } else {
                Self.answerTimeout(context, message: "the request body stalled for more than \(limits.bodyReadTimeout)")
            }
        }
    }

    /// 408 with the error body, written as raw bytes (the HTTP encoder may be mid-message), then close.
    private static func answerTimeout(_ context: ChannelHandlerContext, message: String) {
        let response = RawErrorResponse.bytes(APIError(.requestTimeout, message: message), requestId: SortableID.make())
        context.writeAndFlush(NIOAny(ByteBuffer(bytes: response))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}

/// First in the pipeline: notices bytes before the decoder turns them into request parts.
final class RawBytesWatch: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let timeouts: ConnectionTimeouts

    init(_ timeouts: ConnectionTimeouts) {
        self.timeouts = timeouts
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { timeouts.attach(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        timeouts.attach(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timeouts.detach()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timeouts.detach()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        timeouts.bytesArrived()
        context.fireChannelRead(data)
    }
}

/// After the HTTP codec: follows requests and responses part by part, and stands in for the
/// answer Hummingbird's request loop gives to input it cannot parse (a bare 400 with no body):
/// a response head written while no request is open can only be that one.
final class RequestPartsWatch: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart
    private let timeouts: ConnectionTimeouts
    private var parserError: HTTPParserError?
    private enum Replacement { case none, answering, silent }
    private var replacement = Replacement.none
    /// Called if the client goes away (closes its side or the connection) before the current
    /// response has ended; cleared when it ends.
    private var departureActions: [@Sendable () -> Void] = []
    private var clientGone = false

    init(_ timeouts: ConnectionTimeouts) {
        self.timeouts = timeouts
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: timeouts.headArrived()
        case .body: timeouts.bodyPartArrived()
        case .end: timeouts.endArrived()
        }
        context.fireChannelRead(data)
    }

    /// Runs `action` when the client leaves before the response in progress ends (at once if it
    /// has left already). On the channel's event loop only.
    func whenClientLeaves(_ action: @escaping @Sendable () -> Void) {
        if clientGone { action() } else { departureActions.append(action) }
    }

    private func clientLeft() {
        clientGone = true
        let actions = departureActions
        departureActions = []
        for action in actions { action() }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event { clientLeft() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        clientLeft()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? HTTPParserError { parserError = error }
        context.fireErrorCaught(error)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let part = unwrapOutboundIn(data)
        switch (part, replacement) {
        case (.head(let head), .none) where timeouts.openRequests == 0 && head.status.kind != .informational:
            // The request loop's answer to unparsable input. Mid-body of a request that was
            // already answered, a second answer would be a lie: say nothing and let it close.
            if timeouts.requestInputOpen {
                replacement = .silent
            } else {
                replacement = .answering
                let error = parserError.map(GatewayHTTPChannel.apiError)
                    ?? APIError(.badRequest, code: APIError.gatewayValidationCode, message: "malformed HTTP request")
                let parts = RawErrorResponse.parts(error, requestId: SortableID.make())
                for part in parts.dropLast() { context.write(wrapOutboundOut(part), promise: nil) }
            }
            promise?.succeed(())
        case (.body, .answering), (.body, .silent), (.head, .answering), (.head, .silent):
            promise?.succeed(())
        case (.end, .answering):
            replacement = .none
            context.write(data, promise: promise)
        case (.end, .silent):
            replacement = .none
            promise?.succeed(())
        default:
            switch part {
            case .head(let head) where head.status.kind != .informational: timeouts.responseHeadSent()
            case .end:
                timeouts.responseEnded()
                departureActions = []
            default: break
            }
            context.write(data, promise: promise)
        }
    }
}
