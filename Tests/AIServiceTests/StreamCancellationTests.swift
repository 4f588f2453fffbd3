import AIProviders
import AIService
import AISaaSProtos
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import Platform
import Testing
import TestSupport

/// The in-process transport never reports a client that went away, so this suite serves the AI
/// service the way production does: a real HTTP/2 server from `buildAIService`.
@Suite("Stream cancellation")
struct StreamCancellationTests {
    /// The AI service built as production builds it, on loopback, with a client of it.
    private func withService(
        _ kind: TestDatabaseKind, provider: ScriptedProvider, transcoder: (any AudioTranscoding)? = nil,
        configure: (inout AIServiceSettings) -> Void = { _ in },
        _ body: (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> Void
    ) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var settings = AIServiceSettings(listen: HostPort(host: "127.0.0.1", port: 0), database: try await kind.makeLocation(in: directory))
        configure(&settings)
        let process = try await buildAIService(settings: settings, providers: AIProviderDirectory([provider]), transcoder: transcoder, logger: Logger(label: "ai-service-test"))
        do {
            try await withThrowingTaskGroup { group in
                group.addTask { try await process.server.serve() }
                let port = try #require(try await process.listeningAddress().ipv4?.port)
                let transport = try HTTP2ClientTransport.Posix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
                try await withGRPCClient(transport: transport, interceptors: [RequestScopeClientInterceptor()]) { client in
                    try await body(client)
                }
                process.server.beginGracefulShutdown()
                try await group.waitForAll()
            }
        } catch {
            await process.database.shutdown()
            throw error
        }
        await process.database.shutdown()
    }

    /// The provider bills the audio it was sent even when the client leaves before the text.
    @Test(arguments: TestDatabaseKind.enabled)
    func transcriptionCutShortBooksTheAudioSent(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider()
        provider.update { $0.delay = .seconds(30) }
        try await withService(kind, provider: provider, transcoder: ScriptedTranscoder(durationSeconds: 120), configure: {
            $0.prices = PriceTable(["openai/*": .init(perAudioMinute: 0.006)])
        }) { client in
            let speech = Grpc_Ai_V1_AiSpeechService.Client(wrapping: client)
            let usage = Grpc_Ai_V1_AiUsageService.Client(wrapping: client)
            let call = Task { try await asUser("alice") { try await speech.createTranscription(SpeechTests.transcription("memo.wav")) } }
            #expect(try await eventually { provider.snapshot.transcriptions.count == 1 })
            call.cancel()
            _ = await call.result
            #expect(try await eventually { try await asUser("alice") { try await usage.getUsage(.init()) }.records.first?.status == 499 })
            let record = try #require(try await asUser("alice") { try await usage.getUsage(.init()) }.records.first)
            #expect(record.audioSeconds == 120, "the two minutes sent are booked")
            #expect(abs(record.cost - 0.012) < 1e-9)
            #expect(record.error.contains("usage estimated: the call was cut short"), "\(record.error)")
        }
    }

    @Test(arguments: TestDatabaseKind.enabled)
    func clientGoneStopsTheProviderAndRecords499(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider()
        provider.update {
            $0.streamChunks = [
                ChatCompletionDelta(choices: [ChatDeltaChoice(index: 0, content: "first")]),
                ChatCompletionDelta(choices: [ChatDeltaChoice(index: 0, content: "never")]),
            ]
            $0.hangAfter = 1
        }
        try await withService(kind, provider: provider) { client in
            let chat = Grpc_Ai_V1_AiChatModelService.Client(wrapping: client)
            let usage = Grpc_Ai_V1_AiUsageService.Client(wrapping: client)
            _ = try await asUser("root", admin: true) { try await usage.setQuota(.with { $0.userID = "alice"; $0.tokenBudget = 1_000 }) }
            let (firstChunk, continuation) = AsyncStream<String>.makeStream()
            let call = Task {
                try await asUser("alice") {
                    try await chat.streamChatCompletion(.with { $0.question = "hi" }) { response in
                        for try await chunk in response.messages { continuation.yield(chunk.choices.first?.delta.content ?? "") }
                    }
                }
            }
            var iterator = firstChunk.makeAsyncIterator()
            #expect(await iterator.next() == "first")
            call.cancel()
            _ = await call.result
            #expect(try await eventually { provider.snapshot.streamsCancelled == 1 })
            let recorded = try await eventually {
                try await asUser("alice") { try await usage.getUsage(.init()) }.records.first?.status == 499
            }
            #expect(recorded)
            let record = try await asUser("alice") { try await usage.getUsage(.init()) }.records.first
            #expect(record?.error.contains("cancelled") == true)
            // Cut short before the provider's usage chunk: the prompt ("hi") and the relayed
            // "first" are booked as an estimate, not for free.
            #expect(record?.error.contains("usage estimated: stream ended early") == true)
            #expect(record?.promptTokens == 1 && record?.completionTokens == 2 && record?.totalTokens == 3)
            let quota = try await asUser("alice") { try await usage.getQuota(.with { $0.userID = "alice" }) }
            #expect(quota.tokensUsed == 3)
        }
    }
}
