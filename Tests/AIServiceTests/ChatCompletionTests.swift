import AIProviders
import AIService
import AISaaSProtos
import GRPCCore
import Platform
import Testing
import TestSupport

@Suite("Chat completions")
struct ChatCompletionTests {
    @Test(arguments: TestDatabaseKind.enabled)
    func assemblesMessagesFromTurnsHistoryAndTemplate(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider(name: "openai")
        let local = ScriptedProvider(name: "local", defaults: ProviderModels(chat: "llama", exposed: ["llama", "llama-big"]))
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([provider, local], defaultName: "openai")) { h in
            let model = try await h.a.createModel("alice", name: "Tpl") {
                $0.provider = "local"
                $0.model = "llama-big"
                $0.struct = [.with { $0.key = "system"; $0.value = "You are terse." }, .with { $0.key = "assistant"; $0.value = "Hi." }]
                $0.questionTpl = "Answer %question% twice: %question%"
            }
            let answer = try await h.a.ask("alice", "why?", chatModelId: model.id, messages: [("user", "earlier"), ("assistant", "reply")])
            #expect(answer.choices.first?.message.content == "echo: Answer why? twice: why?")
            #expect(answer.usage.totalTokens == 15 && answer.usage.promptTokens == 10)
            let sent = try #require(local.snapshot.chatRequests.last)
            #expect(sent.model == "llama-big")
            #expect(sent.messages == [
                ChatMessage(role: "system", content: "You are terse."), ChatMessage(role: "assistant", content: "Hi."),
                ChatMessage(role: "user", content: "earlier"), ChatMessage(role: "assistant", content: "reply"),
                ChatMessage(role: "user", content: "Answer why? twice: why?"),
            ])

            let plain = try await h.a.createModel("alice", name: "Plain") { $0.questionTpl = "Context first." }
            _ = try await h.a.ask("alice", "the question", chatModelId: plain.id)
            #expect(provider.snapshot.chatRequests.last?.messages == [ChatMessage(role: "user", content: "Context first.\nthe question")])

            _ = try await h.b.ask("alice", "bare", messages: [("system", "sys")])
            let bare = try #require(provider.snapshot.chatRequests.last)
            #expect(bare.model == "gpt-test")
            #expect(bare.messages == [ChatMessage(role: "system", content: "sys"), ChatMessage(role: "user", content: "bare")])
        }
    }

    /// A template may name `%question%` 400 times; the longest question in it would make 12.8 MB
    /// of prompt. Refused as the question's fault, before the provider.
    @Test(arguments: TestDatabaseKind.enabled)
    func aQuestionTooLongForItsTemplateIsRefused(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider()
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([provider])) { h in
            let model = try await h.a.createModel("alice", name: "Echo") { $0.questionTpl = String(repeating: "%question%", count: 400) }
            let refused = await rpcError { try await h.a.ask("alice", String(repeating: "q", count: 32_000), chatModelId: model.id) }
            #expect(refused?.code == .invalidArgument)
            #expect(refused?.violatedProperties == ["question"])
            #expect(provider.snapshot.chatRequests.isEmpty)
            _ = try await h.a.ask("alice", "short", chatModelId: model.id)
            #expect(provider.snapshot.chatRequests.last?.messages.last?.content == String(repeating: "short", count: 400))
        }
    }

    @Test(arguments: TestDatabaseKind.enabled)
    func rejectsBadInputAndDeletedModels(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider()
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([provider])) { h in
            let bad = await rpcError { try await h.a.ask("alice", "  ", messages: [("robot", "x"), ("user", "fine")]) }
            #expect(bad?.code == .invalidArgument)
            #expect(Set(bad?.violatedProperties ?? []) == ["question", "messages[0].role"])
            let many = await rpcError { try await h.a.ask("alice", "q", messages: Array(repeating: ("user", "m"), count: 101)) }
            #expect(many?.violatedProperties == ["messages"])
            let model = try await h.a.createModel("alice", name: "Gone")
            try await asUser("alice") { _ = try await h.a.chat.deleteChatModel(.with { $0.id = model.id }) }
            let deleted = await rpcError { try await h.a.ask("alice", "q", chatModelId: model.id) }
            #expect(deleted?.code == .notFound)
            #expect(provider.snapshot.chatRequests.isEmpty)
        }
    }

    @Test(arguments: TestDatabaseKind.enabled)
    func withoutProvidersInvocationsAreUnavailable(kind: TestDatabaseKind) async throws {
        try await AIServiceHarness.run(kind, providers: .empty, transcoder: nil) { h in
            let chat = await rpcError { try await h.a.ask("alice", "hello") }
            #expect(chat?.code == .unavailable)
            #expect(chat?.message.contains("AI_PROVIDERS") == true && chat?.message.contains("AI_PROVIDER_<N>_BASE_URL") == true)
            let tts = await rpcError { try await asUser("alice") { try await h.a.speech.createSpeech(.with { $0.text = "hi" }) } }
            #expect(tts?.code == .unavailable)
            let create = await rpcError { try await h.a.createModel("alice", name: "X") }
            #expect(create?.code == .invalidArgument && create?.violatedProperties == ["provider"])
        }
    }

    @Test(arguments: TestDatabaseKind.enabled)
    func streamRelaysChunksInOrderWithUsageLast(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider()
        provider.update {
            $0.streamChunks = [
                ChatCompletionDelta(choices: [ChatDeltaChoice(index: 0, role: "assistant", content: "Hel")]),
                ChatCompletionDelta(choices: [ChatDeltaChoice(index: 0, content: "lo")]),
                ChatCompletionDelta(choices: [ChatDeltaChoice(index: 0, content: "!", finishReason: "stop")]),
                ChatCompletionDelta(choices: [], usage: TokenUsage(promptTokens: 7, completionTokens: 3, totalTokens: 10)),
            ]
        }
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([provider])) { h in
            let chunks = try await asUser("alice") {
                try await h.a.chat.streamChatCompletion(.with { $0.question = "hi" }) { response in
                    var received: [Grpc_Ai_V1_ChatCompletionChunk] = []
                    for try await chunk in response.messages { received.append(chunk) }
                    return received
                }
            }
            #expect(chunks.map { $0.choices.first?.delta.content ?? "" } == ["Hel", "lo", "!", ""])
            #expect(chunks[2].choices.first?.finishReason == "stop")
            #expect(chunks.last?.hasUsage == true && chunks.last?.usage.totalTokens == 10)
            #expect(chunks.dropLast().allSatisfy { !$0.hasUsage })
            let report = try await h.b.usageReport("alice")
            #expect(report.records.map(\.status) == [200])
            #expect(report.records.first?.totalTokens == 10 && report.records.first?.promptTokens == 7)
        }
    }

    @Test(arguments: TestDatabaseKind.enabled)
    func streamRefusalsArriveAsStatuses(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider()
        provider.update { $0.failure = DomainError(.upstreamFailure, "provider answered 500") }
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([provider])) { h in
            let error = await rpcError {
                try await asUser("alice") {
                    try await h.a.chat.streamChatCompletion(.with { $0.question = "hi" }) { response in
                        for try await _ in response.messages {}
                    }
                }
            }
            #expect(error?.code == .unknown)
            let statuses = try await h.a.usageReport("alice").records.map(\.status)
            #expect(statuses == [502])
        }
    }
}
