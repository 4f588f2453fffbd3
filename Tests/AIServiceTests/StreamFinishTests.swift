import AIProviders
import AIService
import AISaaSProtos
import Foundation
import GRPCCore
import Logging
import Platform
import SQLKit
import Testing
import TestSupport

@Suite("Stream finishing")
struct StreamFinishTests {
    /// gRPC skips the response producer when writing the response metadata fails (the client
    /// left right after the stream was opened): the invocation must still be recorded and its
    /// reservation released, from the stream object going away.
    @Test(arguments: TestDatabaseKind.enabled)
    func aStreamNeverRelayedIsStillFinishedOnce(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider()
        provider.update {
            $0.streamChunks = [ChatCompletionDelta(choices: [ChatDeltaChoice(index: 0, content: "never sent")])]
            $0.hangAfter = 0
        }
        let directory = AIProviderDirectory([provider])
        try await AIServiceHarness.run(kind, providers: directory) { h in
            _ = try await asUser("root", admin: true) { try await h.a.usage.setQuota(.with { $0.userID = "alice"; $0.tokenBudget = 1_000 }) }
            let services = makeAIServices(
                settings: AIServiceSettings(listen: HostPort(host: "127.0.0.1", port: 0), database: .sqlite(path: "unused")),
                database: h.database, providers: directory, transcoder: nil, logger: Logger(label: "ai-service-test")
            )
            let chat = try #require(services.compactMap { $0 as? ChatModelGRPCService }.first)
            try await withServerContextRPCCancellationHandle { handle in
                let context = ServerContext(
                    descriptor: Grpc_Ai_V1_AiChatModelService.Method.StreamChatCompletion.descriptor,
                    remotePeer: "test", localPeer: "test", cancellation: handle
                )
                let request = ServerRequest(metadata: [:], message: Grpc_Ai_V1_CreateChatCompletionRequest.with { $0.question = "12345678" })
                // The response (and with it the opened stream) is dropped without running its producer.
                _ = try await asUser("alice") { try await chat.streamChatCompletion(request: request, context: context) }
            }
            #expect(try await eventually { provider.snapshot.streamsCancelled == 1 })
            let recorded = try await eventually { try await h.a.usageReport("alice").records.first?.status == 499 }
            #expect(recorded)
            let report = try await h.a.usageReport("alice")
            #expect(report.records.count == 1)
            #expect(report.records.first?.promptTokens == 2 && report.records.first?.error.contains("usage estimated") == true)
            let sql = try #require(h.database.database() as? any SQLDatabase)
            let row = try #require(try await sql.raw("SELECT tokens_reserved, tokens_used FROM ai_quota WHERE user_id = 'alice'").first())
            #expect(try row.decode(column: "tokens_reserved", as: Int64.self) == 0)
            #expect(try row.decode(column: "tokens_used", as: Int64.self) == 2)
        }
    }

    /// A provider that never reports usage for streams: the record carries an estimate.
    @Test(arguments: TestDatabaseKind.enabled)
    func aStreamWithoutUsageIsEstimated(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider()
        provider.update { $0.streamChunks = [ChatCompletionDelta(choices: [ChatDeltaChoice(index: 0, content: "abcdefgh")])] }
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([provider])) { h in
            _ = try await asUser("alice") {
                try await h.a.chat.streamChatCompletion(.with { $0.question = "hi" }) { response in
                    for try await _ in response.messages {}
                }
            }
            let record = try #require(try await h.b.usageReport("alice").records.first)
            #expect(record.status == 200 && record.promptTokens == 1 && record.completionTokens == 2 && record.totalTokens == 3)
            #expect(record.error == "usage estimated: the provider reported none")
        }
    }
}
