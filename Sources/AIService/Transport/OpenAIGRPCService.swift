import AIProviders
import AISaaSProtos
import Foundation
import GRPCCore
import NIOCore
import Platform

/// `grpc.ai.v1.AiOpenAIService`: the OpenAI wire API, bodies passed through.
public struct OpenAIGRPCService: Grpc_Ai_V1_AiOpenAIService.SimpleServiceProtocol, DescribedService {
    /// Read once per call: a call works with one version of the settings throughout.
    let domain: LiveSetting<AIDomainServices>
    private var openAI: OpenAIService { domain.current.openAI }
    public var serviceName: String { Grpc_Ai_V1_AiOpenAIService.descriptor.fullyQualifiedService }

    public func createChatCompletion(request: Grpc_Ai_V1_OpenAIRequest, context: ServerContext) async throws -> Grpc_Ai_V1_OpenAIResponse {
        let (body, allowed, caller) = (Array(request.body), request.allowedModels, try Caller.current())
        let openAI = self.openAI
        return Grpc_Ai_V1_OpenAIResponse(try await RPCCancellation.untilRPCCancelled {
            try await openAI.complete(body, allowed: allowed, caller: caller)
        })
    }

    /// As in `ChatModelGRPCService`: checks, admission and opening the provider's stream happen
    /// before the response starts, so their errors are ordinary statuses; the first event then
    /// carries the rate limit alone, and the relay maps its own errors.
    public func streamChatCompletion(
        request: ServerRequest<Grpc_Ai_V1_OpenAIRequest>, context: ServerContext
    ) async throws -> StreamingServerResponse<Grpc_Ai_V1_OpenAIStreamEvent> {
        let scope = RequestScope.current
        let (body, allowed, caller) = (Array(request.message.body), request.message.allowedModels, try Caller.current())
        let openAI = self.openAI
        let stream = try await RPCCancellation.untilRPCCancelled { try await openAI.openStream(body, allowed: allowed, caller: caller) }
        return StreamingServerResponse { writer in
            try await RequestScope.$current.withValue(scope) {
                do {
                    try await writer.write(.with { event in stream.rateLimit.map { event.rateLimit = .init($0) } })
                    try await RPCCancellation.untilRPCCancelled {
                        try await stream.relay { data in try await writer.write(.with { $0.data = Data(data) }) }
                    }
                } catch {
                    throw RPCErrorMapping.rpcError(for: error)
                }
            }
            return [:]
        }
    }

    public func streamChatCompletion(
        request: Grpc_Ai_V1_OpenAIRequest, response: RPCWriter<Grpc_Ai_V1_OpenAIStreamEvent>, context: ServerContext
    ) async throws {
        let stream = try await openAI.openStream(Array(request.body), allowed: request.allowedModels, caller: try Caller.current())
        try await stream.relay { data in try await response.write(.with { $0.data = Data(data) }) }
    }

    public func createEmbedding(request: Grpc_Ai_V1_OpenAIRequest, context: ServerContext) async throws -> Grpc_Ai_V1_OpenAIResponse {
        let (body, allowed, caller) = (Array(request.body), request.allowedModels, try Caller.current())
        let openAI = self.openAI
        return Grpc_Ai_V1_OpenAIResponse(try await RPCCancellation.untilRPCCancelled {
            try await openAI.embed(body, allowed: allowed, caller: caller)
        })
    }

    public func createSpeech(request: Grpc_Ai_V1_OpenAIRequest, context: ServerContext) async throws -> Grpc_Ai_V1_OpenAIResponse {
        let (body, allowed, caller) = (Array(request.body), request.allowedModels, try Caller.current())
        let openAI = self.openAI
        return Grpc_Ai_V1_OpenAIResponse(try await RPCCancellation.untilRPCCancelled {
            try await openAI.speak(body, allowed: allowed, caller: caller)
        })
    }

    public func createTranscription(request: Grpc_Ai_V1_OpenAIAudioRequest, context: ServerContext) async throws -> Grpc_Ai_V1_OpenAIResponse {
        let input = OpenAIAudioInput(
            audio: ByteBuffer(bytes: request.audio), filename: request.filename,
            fields: request.fields.map { ($0.name, $0.value) }, translate: request.translate
        )
        let (allowed, caller) = (request.allowedModels, try Caller.current())
        let openAI = self.openAI
        return Grpc_Ai_V1_OpenAIResponse(try await RPCCancellation.untilRPCCancelled {
            try await openAI.transcribe(input, allowed: allowed, caller: caller)
        })
    }

    public func listModels(request: Grpc_Ai_V1_ListModelsRequest, context: ServerContext) async throws -> Grpc_Ai_V1_ModelList {
        let models = try await openAI.models(allowed: request.allowedModels, caller: try Caller.current())
        return .with {
            $0.models = models.map { listing in
                .with {
                    $0.id = listing.id
                    $0.ownedBy = listing.ownedBy
                    $0.created = listing.created.timeIntervalSince1970.rounded(.down)
                }
            }
        }
    }
}

extension Grpc_Ai_V1_OpenAIResponse {
    init(_ answer: OpenAIAnswer) {
        self.init()
        body = Data(answer.body.readableBytesView)
        contentType = answer.contentType
        if let rateLimit = answer.rateLimit { self.rateLimit = .init(rateLimit) }
    }
}

extension Grpc_Ai_V1_RateLimitState {
    init(_ state: RateLimitState) {
        self.init()
        limit = Int64(state.limit)
        remaining = Int64(state.remaining)
        resetSeconds = Int64(state.resetSeconds)
    }
}
