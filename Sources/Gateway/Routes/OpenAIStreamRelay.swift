import AISaaSProtos
import Foundation
import GRPCCore
import HTTPTypes
import Hummingbird
import NIOCore
import Platform

/// A streamed `/v1/chat/completions`: the provider's chunks as Server-Sent Events, relayed as
/// they arrive, ending with `data: [DONE]`. The service's first event carries only the rate
/// limit, once the provider accepted the call; until then an error is an ordinary answer with
/// its status. A later error is an event with an `error` object (the SDKs raise it). A client
/// that goes away cancels the call and with it the provider's request.
struct OpenAIStreamRelay {
    let openAI: any Grpc_Ai_V1_AiOpenAIService.ClientProtocol

    func respond(_ call: Grpc_Ai_V1_OpenAIRequest, context: GatewayRequestContext) async throws -> Response {
        let openAI = self.openAI
        return try await ServerSentEventRelay.respond(
            context: context,
            call: { (feed: ServerSentEventRelay.Feed<Grpc_Ai_V1_RateLimitState?, Data>) in
                try await openAI.streamChatCompletion(call) { response in
                    var first = true
                    for try await event in response.messages {
                        if first {
                            first = false
                            feed.open(event.hasRateLimit ? event.rateLimit : nil)
                            if event.data.isEmpty { continue }
                        }
                        feed.send(event.data)
                    }
                }
            },
            headers: { state in
                var headers: HTTPFields = [:]
                if let state { OpenAIRoutes.addRateLimit(state, to: &headers) }
                return headers
            },
            encode: Self.event,
            errorEvent: Self.errorEvent
        )
    }

    /// One Server-Sent Event carrying `data`. A provider's event may hold line breaks (its data
    /// came on several `data:` lines): each line gets its own `data: ` field, as SSE wants, so the
    /// client joins them back into the same text.
    static func event(_ data: Data) -> ByteBuffer {
        var buffer = ByteBuffer(string: "data: ")
        if !data.contains(0x0A) {
            buffer.writeBytes(data)
        } else {
            for (index, line) in data.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
                if index > 0 { buffer.writeString("\ndata: ") }
                buffer.writeBytes(line)
            }
        }
        buffer.writeString("\n\n")
        return buffer
    }

    static func errorEvent(_ error: any Error) -> ByteBuffer {
        let apiError = (error as? RPCError).map(APIError.init) ?? APIError(.badGateway, message: "the stream ended unexpectedly")
        var buffer = ByteBuffer(string: "data: ")
        buffer.writeBytes(OpenAIError(apiError).json)
        buffer.writeString("\n\n")
        return buffer
    }
}
