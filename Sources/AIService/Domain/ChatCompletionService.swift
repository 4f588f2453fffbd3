import AIProviders
import Foundation
import Platform

/// What a caller asks a chat completion for.
public struct CompletionInput: Sendable {
    public var chatModelId: String?
    public var question: String
    public var messages: [ChatMessage]

    public init(chatModelId: String? = nil, question: String, messages: [ChatMessage] = []) {
        self.chatModelId = chatModelId
        self.question = question
        self.messages = messages
    }
}

/// Chat completions, plain and streamed, through the invocation pipeline.
public struct ChatCompletionService: Sendable {
    let chatModels: any ChatModelRepository
    let providers: AIProviderDirectory
    let pipeline: InvocationPipeline

    /// The provider, model and messages for `input`: the chat model's, or the defaults.
    func prepare(_ input: CompletionInput, caller: Caller) async throws -> (any AIProvider, ChatCompletionRequest, InvocationTarget) {
        try ChatPrompt.check(question: input.question, history: input.messages)
        if providers.isEmpty { throw AIProviderDirectory.notConfigured }
        var turns: [ChatTurn] = [], template = "", providerName: String?, model: String?
        if let id = input.chatModelId, !id.isEmpty {
            guard let chatModel = try await chatModels.find(id: id, userId: caller.userId), chatModel.enabled else {
                throw ChatModelManager.notFound(id)
            }
            (turns, template, providerName, model) = (chatModel.turns, chatModel.questionTemplate, chatModel.provider, chatModel.model)
        }
        if let providerName, providers.providers[providerName] == nil {
            // The chat model names a provider that was configured once and is not any more.
            throw DomainError(.failedPrecondition, "the chat model's provider '\(providerName)' is not configured any more")
        }
        let provider = try providers.provider(named: providerName)
        let request = ChatCompletionRequest(
            model: model ?? provider.defaults.chat,
            messages: ChatPrompt.messages(turns: turns, template: template, history: input.messages, question: input.question)
        )
        let target = InvocationTarget(kind: .chat, provider: provider.name, model: request.model, chatModelId: input.chatModelId ?? "")
        return (provider, request, target)
    }

    public func complete(_ input: CompletionInput, caller: Caller) async throws -> ChatCompletion {
        let (provider, request, target) = try await prepare(input, caller: caller)
        return try await pipeline.run(target, caller: caller) {
            let completion = try await provider.complete(request)
            return (completion, Consumption(completion.usage))
        }
    }

    /// Admits the call and opens the provider's stream; the caller then relays it with
    /// `ChatStream.relay`, which finishes the invocation whatever happens.
    public func openStream(_ input: CompletionInput, caller: Caller) async throws -> ChatStream {
        let (provider, request, target) = try await prepare(input, caller: caller)
        let admission = try await pipeline.admit(target, caller: caller)
        do {
            let chunks = try await provider.stream(request)
            return ChatStream(chunks: chunks, admission: admission, pipeline: pipeline)
        } catch {
            await pipeline.finish(admission, consumed: Consumption(), error: error, cancelled: error is CancellationError)
            throw error
        }
    }
}

/// An admitted, opened completion stream.
public struct ChatStream: Sendable {
    let chunks: AsyncThrowingStream<ChatCompletionDelta, any Error>
    let admission: Admission
    let pipeline: InvocationPipeline

    /// Thrown by `relay` when the client went away.
    public struct ClientGone: Error {}

    /// Hands each chunk to `write` as it arrives. Cancelling the task (or `write` failing, which
    /// happens when the client is gone) stops the provider's stream; the usage record then says 499.
    public func relay(_ write: (ChatCompletionDelta) async throws -> Void) async throws {
        var consumed = Consumption()
        do {
            for try await chunk in chunks {
                if let usage = chunk.usage { consumed = Consumption(usage) }
                do {
                    try await write(chunk)
                } catch {
                    throw ClientGone()
                }
            }
            try Task.checkCancellation()
        } catch {
            let cancelled = Task.isCancelled || error is CancellationError || error is ClientGone
            await pipeline.finish(admission, consumed: consumed, error: error, cancelled: cancelled)
            throw error
        }
        await pipeline.finish(admission, consumed: consumed, error: nil)
    }
}

extension Consumption {
    init(_ usage: TokenUsage?) {
        self.init(promptTokens: usage?.promptTokens ?? 0, completionTokens: usage?.completionTokens ?? 0, totalTokens: usage?.totalTokens ?? 0)
    }
}
