import AIProviders
import AIService
import AISaaSProtos
import Foundation
import GRPCCore
import Platform
import SQLKit
import Testing
import TestSupport

@Suite("Usage")
struct UsageTests {
    @Test(arguments: TestDatabaseKind.enabled)
    func recordsSuccessesAndFailuresWithCost(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider()
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([provider]), configure: {
            $0.prices = PriceTable(["openai/gpt-test": .init(promptPerMillionTokens: 2, completionPerMillionTokens: 8)])
        }) { h in
            let model = try await h.a.createModel("alice", name: "M")
            _ = try await h.a.ask("alice", "one", chatModelId: model.id)
            provider.update { $0.failure = DomainError(.upstreamFailure, "the provider failed") }
            #expect(await rpcError { try await h.b.ask("alice", "two") }?.code == .unknown)
            provider.update { $0.failure = DomainError(.deadlineExceeded, "the provider timed out") }
            #expect(await rpcError { try await h.a.ask("alice", "three") }?.code == .deadlineExceeded)
            provider.update { $0.failure = DomainError(.resourceExhausted, "slow down", reason: "ProviderRateLimited", retryAfterSeconds: 3) }
            #expect(await rpcError { try await h.a.ask("alice", "four") }?.reason == "ProviderRateLimited")

            let report = try await h.a.usageReport("alice")
            #expect(report.records.map(\.status) == [429, 504, 502, 200])  // newest first
            let ok = try #require(report.records.last)
            #expect(ok.chatModelID == model.id && ok.provider == "openai" && ok.model == "gpt-test" && ok.kind == .chat)
            #expect(ok.promptTokens == 10 && ok.completionTokens == 5 && ok.totalTokens == 15)
            #expect(abs(ok.cost - (10 * 2 + 5 * 8) / 1_000_000) < 1e-12)
            #expect(ok.accessKey == "AK-alice" && ok.requestID.hasPrefix("req-") && ok.error.isEmpty)
            #expect(report.records[2].error == "the provider failed" && report.records[2].totalTokens == 0)
            #expect(report.total.requests == 4 && report.total.failures == 3 && report.total.totalTokens == 15)
            #expect(report.pagination.total == 4)
        }
    }

    @Test(arguments: TestDatabaseKind.enabled)
    func usersSeeTheirOwnAdminsAnyone(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider()
        let local = ScriptedProvider(name: "local", defaults: ProviderModels(chat: "llama"))
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([provider, local], defaultName: "openai")) { h in
            let localModel = try await h.a.createModel("alice", name: "L") { $0.provider = "local" }
            _ = try await h.a.ask("alice", "a")
            _ = try await h.a.ask("alice", "b", chatModelId: localModel.id)
            _ = try await h.a.ask("bob", "c")

            let own = try await h.a.usageReport("alice")
            #expect(own.total.requests == 2 && own.records.allSatisfy { $0.userID == "alice" })
            #expect(own.byModel.map(\.key) == ["local/llama", "openai/gpt-test"] && own.byModel.map(\.requests) == [1, 1])
            let today = Date.now.formatted(Date.ISO8601FormatStyle(timeZone: .gmt).year().month().day())
            #expect(own.byDay.map(\.key) == [today] && own.byDay.first?.totalTokens == 30)

            let denied = await rpcError { try await h.a.usageReport("alice") { $0.userID = "bob" } }
            #expect(denied?.code == .permissionDenied)
            let deniedAll = await rpcError { try await h.a.usageReport("alice") { $0.allUsers = true } }
            #expect(deniedAll?.code == .permissionDenied)

            let bobs = try await h.b.usageReport("root", admin: true) { $0.userID = "bob" }
            #expect(bobs.total.requests == 1 && bobs.records.first?.userID == "bob")
            // An admin who names nobody sees everyone; `all_users` says the same explicitly.
            let everyone = try await h.b.usageReport("root", admin: true) { $0.pageSize = 2 }
            #expect(everyone.total.requests == 3 && everyone.records.count == 2 && everyone.pagination.total == 3)
            let explicit = try await h.b.usageReport("root", admin: true) { $0.allUsers = true; $0.userID = "" }
            #expect(explicit.total.requests == 3 && Set(explicit.records.map(\.userID)) == ["alice", "bob"])
            let alicesOwn = try await h.a.usageReport("alice") { $0.userID = "alice" }
            #expect(alicesOwn.total.requests == 2)

            let future = Date().addingTimeInterval(3600).millisecondsSince1970
            let empty = try await h.a.usageReport("alice") { $0.from = future }
            #expect(empty.total.requests == 0 && empty.records.isEmpty && empty.byDay.isEmpty)
            let until = try await h.a.usageReport("alice") { $0.to = future }
            #expect(until.total.requests == 2)
        }
    }

    /// Timestamps and pages a client controls never trap the process: they are refused.
    @Test(arguments: TestDatabaseKind.enabled)
    func absurdRangesAndPagesAreInvalidArguments(kind: TestDatabaseKind) async throws {
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([ScriptedProvider()])) { h in
            _ = try await h.a.ask("alice", "one")
            for bad in [Double.nan, .infinity, -.infinity, -1, 1e300, Double(Int64.max)] {
                let from = await rpcError { try await h.a.usageReport("alice") { $0.from = bad } }
                #expect(from?.code == .invalidArgument && from?.violatedProperties == ["from"], "from = \(bad)")
                let to = await rpcError { try await h.a.usageReport("root", admin: true) { $0.to = bad } }
                #expect(to?.code == .invalidArgument && to?.violatedProperties == ["to"], "to = \(bad)")
            }
            let both = await rpcError { try await h.a.usageReport("alice") { $0.from = .nan; $0.to = -5 } }
            #expect(Set(both?.violatedProperties ?? []) == ["from", "to"])
            let farPage = try await h.a.usageReport("alice") { $0.current = .max; $0.pageSize = 100 }
            #expect(farPage.records.isEmpty && farPage.total.requests == 1)
            let badPage = await rpcError { try await h.a.usageReport("alice") { $0.current = .min; $0.pageSize = .max } }
            #expect(Set(badPage?.violatedProperties ?? []) == ["current", "pageSize"])
            let edge = try await h.a.usageReport("alice") { $0.from = 0; $0.to = 253_402_300_799_999 }
            #expect(edge.total.requests == 1)
        }
    }

    /// Invocations refused before they reach the pipeline are recorded too, without the quota.
    @Test(arguments: TestDatabaseKind.enabled)
    func refusalsBeforeTheProviderAreRecorded(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider(defaults: ProviderModels(chat: "gpt-test", speech: "tts-x"))
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([provider]), transcoder: nil) { h in
            _ = try await asUser("root", admin: true) { try await h.a.usage.setQuota(.with { $0.userID = "alice"; $0.tokenBudget = 100 }) }
            #expect(await rpcError { try await h.a.ask("alice", " ") }?.code == .invalidArgument)
            #expect(await rpcError { try await h.a.ask("alice", "q", chatModelId: "missing") }?.code == .notFound)
            let format = await rpcError { try await asUser("alice") { try await h.a.speech.createTranscription(SpeechTests.transcription("a.txt")) } }
            #expect(format?.reason == "UnsupportedAudioFormat")
            let ffmpeg = await rpcError { try await asUser("alice") { try await h.b.speech.createTranscription(SpeechTests.transcription("a.mp3")) } }
            #expect(ffmpeg?.code == .unavailable)
            #expect(await rpcError { try await asUser("alice") { try await h.a.speech.createSpeech(.with { $0.text = "" }) } }?.code == .invalidArgument)

            let records = try await h.a.usageReport("alice").records
            #expect(records.map(\.status) == [422, 503, 400, 404, 422])
            #expect(records.map(\.kind) == [.tts, .stt, .stt, .chat, .chat])
            #expect(records.allSatisfy { $0.provider == "openai" && $0.totalTokens == 0 && $0.cost == 0 && !$0.error.isEmpty })
            #expect(records[0].model == "tts-x" && records[3].model == "gpt-test" && records[3].chatModelID == "missing")
            #expect(records[1].error == "speech to text needs ffmpeg: install the ffmpeg package")
            #expect(provider.snapshot.chatRequests.isEmpty && provider.snapshot.speeches.isEmpty)
            let quota = try await asUser("alice") { try await h.a.usage.getQuota(.with { $0.userID = "alice" }) }
            #expect(quota.tokensUsed == 0)
            let sql = try #require(h.database.database() as? any SQLDatabase)
            let row = try #require(try await sql.raw("SELECT tokens_reserved, max_call_tokens FROM ai_quota WHERE user_id = 'alice'").first())
            #expect(try row.decode(column: "tokens_reserved", as: Int64.self) == 0)
            #expect(try row.decode(column: "max_call_tokens", as: Int64.self) == 0)
        }
    }

    @Test(arguments: TestDatabaseKind.enabled)
    func withoutProvidersRefusalsAreRecordedAs503(kind: TestDatabaseKind) async throws {
        try await AIServiceHarness.run(kind, providers: .empty, transcoder: nil) { h in
            _ = await rpcError { try await h.a.ask("alice", "hello") }
            _ = await rpcError { try await asUser("alice") { try await h.a.speech.createSpeech(.with { $0.text = "hi" }) } }
            let records = try await h.a.usageReport("alice").records
            #expect(records.map(\.status) == [503, 503] && records.allSatisfy { $0.provider.isEmpty })
        }
    }
}
