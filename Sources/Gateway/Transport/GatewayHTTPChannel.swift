import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import Platform

extension HTTPServerBuilder {
    /// HTTP/1.1 with the gateway's connection timeouts, and the error body of the contract (with
    /// the security headers) for requests the HTTP layer itself refuses: bad framing, oversized
    /// or invalid headers, a stalled client. Hummingbird's own channel answers those with a bare
    /// status.
    static func gateway(limits: HTTPServerLimits) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in GatewayHTTPChannel(responder: responder, limits: limits) }
    }
}

struct GatewayHTTPChannel: ServerChildChannel {
    typealias Value = NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>

    private let base: HTTP1Channel
    private let limits: HTTPServerLimits

    init(responder: @escaping HTTPChannelHandler.Responder, limits: HTTPServerLimits) {
        self.limits = limits
        base = HTTP1Channel(responder: responder, configuration: .init(
            additionalChannelHandlers: [],
            idleTimeout: nil,
            httpDecoderConfiguration: .init(maxHeaderFieldSize: 16 << 10, maxHeaderListSize: 64 << 10, maxHeaderFieldCount: 200)
        ))
    }

    /// Hummingbird's HTTP/1 pipeline, with the timeouts' watches before its decoder and after its
    /// codec. Its request loop stays as it is; the parts watch replaces the bare answer it gives to
    /// a request it cannot parse.
    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let limits = self.limits
        let base = self.base
        return channel.eventLoop.makeCompletedFuture {
            let timeouts = ConnectionTimeouts(limits: limits)
            try channel.pipeline.syncOperations.addHandler(RawBytesWatch(timeouts), position: .first)
            return NIOLoopBound(timeouts, eventLoop: channel.eventLoop)
        }.flatMap { timeouts in
            base.setup(channel: channel, logger: logger).flatMapThrowing { value in
                // After Hummingbird's parts codec and before its connection state handler.
                let state = try channel.pipeline.syncOperations.handler(type: HTTPConnectionStateHandler.self)
                try channel.pipeline.syncOperations.addHandler(RequestPartsWatch(timeouts.value), position: .before(state))
                // Right after NIO's HTTP/1 decoder, where the request still has its version.
                let decoder = try channel.pipeline.syncOperations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
                try channel.pipeline.syncOperations.addHandler(HTTP10ConnectionClose(), position: .after(decoder))
                return value
            }
        }
    }

    /// The connection's requests run on its event loop, start to finish (`EventLoopTaskExecutor`).
    func handle(value: Value, logger: Logger) async {
        await withTaskExecutorPreference(EventLoopTaskExecutor.of(value.channel.eventLoop)) {
            await base.handle(value: value, logger: logger)
        }
    }

    static func apiError(_ error: HTTPParserError) -> APIError {
        switch error {
        case .headerOverflow:
            return APIError(HTTPResponse.Status(code: 431, reasonPhrase: "Request Header Fields Too Large"), message: "the request headers are too large")
        default:
            return APIError(.badRequest, code: APIError.gatewayValidationCode, message: "malformed HTTP request (\(error))")
        }
    }
}

/// An HTTP/1.0 request without `Connection: keep-alive` ends its connection with its answer
/// (RFC 9112 §9.3). The request reaches Hummingbird, which knows no HTTP versions (its types are
/// HTTP's newer ones) and ends a connection only on `Connection: close`, saying that: a client
/// that read to the end of the connection waited for the idle timeout.
final class HTTP10ConnectionClose: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(var head) = unwrapInboundIn(data), head.version == .http1_0, !head.isKeepAlive {
            head.headers.replaceOrAdd(name: "connection", value: "close")
            context.fireChannelRead(wrapInboundOut(.head(head)))
            return
        }
        context.fireChannelRead(data)
    }
}

/// An error answer built outside the router, for requests that never reached it.
enum RawErrorResponse {
    static func head(_ error: APIError, requestId: String, contentLength: Int) -> HTTPResponse {
        var fields: HTTPFields = [.contentType: "application/json; charset=utf-8", .connection: "close"]
        fields[.contentLength] = String(contentLength)
        fields[.requestId] = requestId
        for field in error.headers { fields.append(field) }
        RequestEnvelopeMiddleware.addSecurityHeaders(&fields, path: "")
        return HTTPResponse(status: error.status, headerFields: fields)
    }

    static func parts(_ error: APIError, requestId: String) -> [HTTPResponsePart] {
        let body = ResponseBody.errorJSON(error, requestId: requestId)
        return [.head(head(error, requestId: requestId, contentLength: body.count)), .body(ByteBuffer(bytes: body)), .end(nil)]
    }

    /// The whole HTTP/1.1 answer as bytes.
    static func bytes(_ error: APIError, requestId: String) -> [UInt8] {
        let body = ResponseBody.errorJSON(error, requestId: requestId)
        let response = head(error, requestId: requestId, contentLength: body.count)
        var text = "HTTP/1.1 \(response.status.code) \(response.status.reasonPhrase)\r\n"
        for field in response.headerFields { text += "\(field.name.rawName): \(field.value)\r\n" }
        text += "\r\n"
        return Array(text.utf8) + Array(body)
    }
}
