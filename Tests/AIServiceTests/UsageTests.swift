import AIProviders
import AIService
import AISaaSProtos
import Foundation
import GRPCCore
import Platform
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
            let everyone = try await h.b.usageReport("root", admin: true) { $0.allUsers = true; $0.pageSize = 2 }
            #expect(everyone.total.requests == 3 && everyone.records.count == 2 && everyone.pagination.total == 3)

            let future = Date().addingTimeInterval(3600).millisecondsSince1970
            let empty = try await h.a.usageReport("alice") { $0.from = future }
            #expect(empty.total.requests == 0 && empty.records.isEmpty && empty.byDay.isEmpty)
            let until = try await h.a.usageReport("alice") { $0.to = future }
            #expect(until.total.requests == 2)
        }
    }
}
