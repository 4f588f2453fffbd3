import AISaaSProtos
import Foundation
import GRPCCore
import HTTPTypes
import Hummingbird
import NIOCore
import Platform
import Synchronization

/// A streamed `/v1/chat/completions`: the provider's chunks as Server-Sent Events, relayed as
/// they arrive, ending with `data: [DONE]`. The service's first event carries only the rate
/// limit, once the provider accepted the call; until then an error is an ordinary answer with
/// its status. A later error is an event with an `error` object (the SDKs raise it). A client
/// that goes away cancels the call and with it the provider's request.
struct OpenAIStreamRelay {
    let openAI: any Grpc_Ai_V1_AiOpenAIService.ClientProtocol

    private enum Event: Sendable {
        case data(Data)
        case keepAlive
    }

    func respond(_ call: Grpc_Ai_V1_OpenAIRequest, request: Request, context: GatewayRequestContext) async throws -> Response {
        let (events, sink) = AsyncThrowingStream.makeStream(of: Event.self)
        // The rate limit, once the service says the provider accepted the call.
        let (opening, openingSink) = AsyncThrowingStream.makeStream(of: Grpc_Ai_V1_RateLimitState?.self)
        let openAI = self.openAI
        // Unstructured on purpose: the call outlives this handler and feeds the response body.
        let relay = Task {
            do {
                try await openAI.streamChatCompletion(call) { response in
                    var first = true
                    for try await event in response.messages {
                        if first {
                            first = false
                            openingSink.yield(event.hasRateLimit ? event.rateLimit : nil)
                            openingSink.finish()
                            if event.data.isEmpty { continue }
                        }
                        sink.yield(.data(event.data))
                    }
                }
                openingSink.finish()
                sink.finish()
            } catch {
                openingSink.finish(throwing: error)
                sink.finish(throwing: error)
            }
        }
        // Only a close while waiting for the provider means the client left (Hummingbird also
        // reports "inbound closed" when it stops watching the connection).
        let waiting = Mutex(true)
        let opened: Grpc_Ai_V1_RateLimitState?? = try await request.body.consumeWithInboundCloseHandler { _ in
            defer { waiting.withLock { $0 = false } }
            return try await withTaskCancellationHandler {
                var iterator = opening.makeAsyncIterator()
                return try await iterator.next()
            } onCancel: {
                relay.cancel()
            }
        } onInboundClosed: {
            if waiting.withLock({ $0 }) { relay.cancel() }
        }

        let keepAlive = Task {
            while !Task.isCancelled {
                try await Task.sleep(for: InvokeRoutes.keepAliveInterval)
                if case .terminated = sink.yield(.keepAlive) { return }
            }
        }
        var headers: HTTPFields = [.contentType: "text/event-stream; charset=utf-8", .cacheControl: "no-cache"]
        headers[HTTPField.Name("X-Accel-Buffering")!] = "no"
        if let state = opened ?? nil { OpenAIRoutes.addRateLimit(state, to: &headers) }
        let body = Hummingbird.ResponseBody { writer in
            defer {
                relay.cancel()
                keepAlive.cancel()
            }
            var iterator = events.makeAsyncIterator()
            while true {
                let event: Event?
                do {
                    event = try await iterator.next()
                } catch {
                    try await writer.write(Self.errorEvent(error))
                    break
                }
                switch event {
                case .data(let data)?:
                    var buffer = ByteBuffer(string: "data: ")
                    buffer.writeBytes(data)
                    buffer.writeString("\n\n")
                    try await writer.write(buffer)
                case .keepAlive?: try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                case nil:
                    try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                    try await writer.finish(nil)
                    return
                }
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    static func errorEvent(_ error: any Error) -> ByteBuffer {
        let apiError = (error as? RPCError).map(APIError.init) ?? APIError(.badGateway, message: "the stream ended unexpectedly")
        var buffer = ByteBuffer(string: "data: ")
        buffer.writeBytes(OpenAIError(apiError).json)
        buffer.writeString("\n\n")
        return buffer
    }
}
