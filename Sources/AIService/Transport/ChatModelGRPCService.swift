import AIProviders
import AISaaSProtos
import Foundation
import GRPCCore
import Logging
import Platform
import SwiftProtobuf

/// `grpc.ai.v1.AiChatModelService`: chat model CRUD and chat completions for the caller.
public struct ChatModelGRPCService: Grpc_Ai_V1_AiChatModelService.SimpleServiceProtocol, DescribedService {
    /// Read once per call: a call works with one version of the settings throughout.
    let domain: LiveSetting<AIDomainServices>
    private var chatModels: ChatModelManager { domain.current.chatModels }
    private var completions: ChatCompletionService { domain.current.completions }
    public var serviceName: String { Grpc_Ai_V1_AiChatModelService.descriptor.fullyQualifiedService }

    public func createChatModel(request: Grpc_Ai_V1_CreateChatModelRequest, context: ServerContext) async throws -> Grpc_Ai_V1_ChatModel {
        let caller = try Caller.current()
        let draft = ChatModelDraft(
            provider: request.hasProvider ? request.provider : nil,
            model: request.hasModel ? request.model : nil,
            name: request.name,
            turns: request.struct.map { ChatTurn(key: $0.key, value: $0.value) },
            questionTemplate: request.hasQuestionTpl ? request.questionTpl : nil
        )
        return Grpc_Ai_V1_ChatModel(try await chatModels.create(draft, userId: caller.userId))
    }

    public func deleteChatModel(request: Grpc_Ai_V1_QueryChatModelByIdRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
        try await chatModels.delete(id: request.id, userId: try Caller.current().userId)
        return Google_Protobuf_Empty()
    }

    /// A repeated field cannot say "not sent": an empty `struct` keeps the model's turns unless
    /// `replace_struct` is set (newer clients), which replaces them with whatever was sent.
    public func updateChatModel(request: Grpc_Ai_V1_UpdateChatModelRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
        let caller = try Caller.current()
        let changes = ChatModelChanges(
            name: request.hasName ? request.name : nil,
            turns: request.struct.isEmpty && !request.replaceStruct ? nil : request.struct.map { ChatTurn(key: $0.key, value: $0.value) },
            questionTemplate: request.hasQuestionTpl ? request.questionTpl : nil
        )
        try await chatModels.update(id: request.id, userId: caller.userId, changes)
        return Google_Protobuf_Empty()
    }

    public func getChatModelById(request: Grpc_Ai_V1_QueryChatModelByIdRequest, context: ServerContext) async throws -> Grpc_Ai_V1_ChatModel {
        Grpc_Ai_V1_ChatModel(try await chatModels.get(id: request.id, userId: try Caller.current().userId))
    }

    public func getChatModelList(request: Grpc_Ai_V1_QueryChatModelListRequest, context: ServerContext) async throws -> Grpc_Ai_V1_ChatModelList {
        let page = try await chatModels.list(
            userId: try Caller.current().userId,
            current: request.hasCurrent ? Int(request.current) : nil,
            pageSize: request.hasPageSize ? Int(request.pageSize) : nil
        )
        return .with {
            $0.results = page.items.map(Grpc_Ai_V1_ChatModel.init)
            $0.pagination = Grpc_Ai_V1_Pagination(page)
        }
    }

    public func createChatCompletion(request: Grpc_Ai_V1_CreateChatCompletionRequest, context: ServerContext) async throws -> Grpc_Ai_V1_CreateChatCompletionChoicesResponse {
        let (input, caller) = (CompletionInput(request), try Caller.current())
        let completions = self.completions
        return Grpc_Ai_V1_CreateChatCompletionChoicesResponse(try await RPCCancellation.untilRPCCancelled {
            try await completions.complete(input, caller: caller)
        })
    }

    /// Validation, admission and opening the provider's stream happen before the response starts,
    /// inside the request's scope, so their errors reach the client as ordinary statuses. The
    /// relay then runs in the response producer, which gRPC runs outside that scope and whose
    /// errors it does not map: both are handled here.
    public func streamChatCompletion(
        request: ServerRequest<Grpc_Ai_V1_CreateChatCompletionRequest>, context: ServerContext
    ) async throws -> StreamingServerResponse<Grpc_Ai_V1_ChatCompletionChunk> {
        let scope = RequestScope.current
        let (input, caller) = (CompletionInput(request.message), try Caller.current())
        let completions = self.completions
        // A client may leave while the provider has not started answering yet.
        let stream = try await RPCCancellation.untilRPCCancelled { try await completions.openStream(input, caller: caller) }
        return StreamingServerResponse { writer in
            try await RequestScope.$current.withValue(scope) {
                do {
                    try await Self.relay(stream, to: writer)
                } catch {
                    throw RPCErrorMapping.rpcError(for: error)
                }
            }
            return [:]
        }
    }

    public func streamChatCompletion(
        request: Grpc_Ai_V1_CreateChatCompletionRequest, response: RPCWriter<Grpc_Ai_V1_ChatCompletionChunk>, context: ServerContext
    ) async throws {
        let stream = try await completions.openStream(CompletionInput(request), caller: try Caller.current())
        try await Self.relay(stream, to: response)
    }

    /// gRPC reports a cancelled call through its cancellation handle, not by cancelling the
    /// handler's task: the relay runs in a task of its own that the handle cancels, so the
    /// provider's stream stops as soon as the client goes.
    private static func relay(_ stream: ChatStream, to writer: RPCWriter<Grpc_Ai_V1_ChatCompletionChunk>) async throws {
        try await RPCCancellation.untilRPCCancelled {
            try await stream.relay { delta in try await writer.write(Grpc_Ai_V1_ChatCompletionChunk(delta)) }
        }
    }
}
