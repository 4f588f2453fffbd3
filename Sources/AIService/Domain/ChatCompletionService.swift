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
    /// `target` learns provider, model and chat model as they become known, so that a refusal
    /// is recorded with as much as was known.
    func prepare(_ input: CompletionInput, caller: Caller, target: inout InvocationTarget) async throws -> PreparedCall {
        target.chatModelId = input.chatModelId ?? ""
        if let name = providers.effectiveDefaultName, let provider = providers.providers[name] {
            (target.provider, target.model) = (name, provider.defaults.chat)
        }
        try ChatPrompt.check(question: input.question, history: input.messages)
        if providers.isEmpty { throw AIProviderDirectory.notConfigured }
        var turns: [ChatTurn] = [], template = "", chatModelProvider: (any AIProvider)?, model: String?
        if let id = input.chatModelId, !id.isEmpty {
            guard let chatModel = try await chatModels.find(id: id, userId: caller.userId), chatModel.enabled else {
                throw ChatModelManager.notFound(id)
            }
            (turns, template, model) = (chatModel.turns, chatModel.questionTemplate, chatModel.model)
            (target.provider, target.model) = (chatModel.provider, chatModel.model)
            chatModelProvider = try ChatModelManager.offeredProvider(for: chatModel, in: providers)
        }
        let provider = try chatModelProvider ?? providers.provider(named: nil)
        let request = ChatCompletionRequest(
            model: model ?? provider.defaults.chat,
            messages: try ChatPrompt.messages(turns: turns, template: template, history: input.messages, question: input.question)
        )
        (target.provider, target.model) = (provider.name, request.model)
        let promptCharacters = request.messages.reduce(0) { $0 + $1.content.count }
        target.expected = .expected(promptCharacters: promptCharacters, answerLimit: request.maxTokens)
        return PreparedCall(provider: provider, request: request, promptCharacters: promptCharacters)
    }

    /// `prepare`, recording a refusal before it is thrown.
    private func prepareRecorded(_ input: CompletionInput, caller: Caller) async throws -> (PreparedCall, InvocationTarget) {
        let started = ContinuousClock.now
        var target = InvocationTarget(kind: .chat, provider: "", model: "", chatModelId: "")
        do {
            let prepared = try await prepare(input, caller: caller, target: &target)
            return (prepared, target)
        } catch {
            await pipeline.recordRejected(target, caller: caller, error: error, started: started)
            throw error
        }
    }

    public func complete(_ input: CompletionInput, caller: Caller) async throws -> ChatCompletion {
        let (prepared, target) = try await prepareRecorded(input, caller: caller)
        let (provider, request) = (prepared.provider, prepared.request)
        var admission: Admission?
        return try await pipeline.run(target, caller: caller, onAdmitted: { admitted in
            admitted.recordInput(GenAIContent.messages(request.messages))
            admission = admitted
        }) {
            let completion = try await provider.complete(request)
            admission?.recordOutput(GenAIContent.answer(completion))
            // A provider that reports no usable count is estimated, as streams and `/v1` are.
            let consumed = completion.usage.map { Consumption($0) } ?? OpenAIBody.estimate(
                promptCharacters: prepared.promptCharacters,
                completionCharacters: completion.choices.reduce(0) { $0 + $1.message.content.count }
            )
            return (completion, consumed)
        }
    }

    /// Admits the call and opens the provider's stream; the caller then relays it with
    /// `ChatStream.relay`. The invocation is finished exactly once whatever happens, even when
    /// the stream is never relayed (see `ChatStream`).
    public func openStream(_ input: CompletionInput, caller: Caller) async throws -> ChatStream {
        let (prepared, recorded) = try await prepareRecorded(input, caller: caller)
        let (provider, request) = (prepared.provider, prepared.request)
        var target = recorded
        target.streamed = true
        let admission = try await pipeline.admit(target, caller: caller)
        do {
            let chunks = try await admission.calling { try await provider.stream(request) }
            return ChatStream(chunks: chunks, finisher: StreamFinisher(admission: admission, pipeline: pipeline, prompt: request.messages, promptCharacters: prepared.promptCharacters))
        } catch {
            await pipeline.finish(admission, failedWith: error)
            throw error
        }
    }
}

/// A chat call ready to go: its provider, its request, and its prompt's length in characters
/// (counted once: usage estimates and quota admission both need it).
struct PreparedCall {
    let provider: any AIProvider
    let request: ChatCompletionRequest
    let promptCharacters: Int
}

extension Consumption {
    /// What a call may spend, as far as its request tells before it runs: its prompt (about four
    /// characters a token) and, when the request limits its answer, that limit.
    static func expected(promptCharacters: Int, answerLimit: Int?) -> Consumption {
        var expected = OpenAIBody.estimate(promptCharacters: promptCharacters, completionCharacters: 0)
        if let answerLimit, answerLimit > 0 {
            expected.completionTokens = answerLimit
            expected.totalTokens += answerLimit
        }
        return expected
    }

    init(_ usage: TokenUsage?) {
        self.init(promptTokens: usage?.promptTokens ?? 0, completionTokens: usage?.completionTokens ?? 0, totalTokens: usage?.totalTokens ?? 0)
    }
}
