import AIProviders
import AIService
import AISaaSProtos
import Foundation
import GRPCCore
import Platform
import SQLKit
import Testing
import TestSupport

/// Admission refuses with 402 only when the budget is (about to be) spent.
@Suite("Quota admission")
struct QuotaAdmissionTests {
    static func concurrentAsks(_ h: AIServiceHarness, _ count: Int) async -> [RPCError?] {
        await withTaskGroup(of: RPCError?.self) { group in
            for index in 0..<count {
                let instance = index.isMultiple(of: 2) ? h.a : h.b
                group.addTask { await rpcError { try await instance.ask("alice", "concurrent \(index)") } }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
    }

    static func reserved(_ h: AIServiceHarness) async throws -> (tokens: Int64, cost: Double) {
        let sql = try #require(h.database.database() as? any SQLDatabase)
        let row = try #require(try await sql.raw("SELECT tokens_reserved, cost_reserved FROM ai_quota WHERE user_id = 'alice'").first())
        return (try row.decode(column: "tokens_reserved", as: Int64.self), try row.decode(column: "cost_reserved", as: Double.self))
    }

    /// No history: the first call holds the budget, a concurrent one waits for it instead of
    /// hearing "quota spent" with nothing spent.
    @Test(arguments: TestDatabaseKind.enabled)
    func concurrentFirstCallsAreNotRefused(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider()
        provider.update { $0.delay = .milliseconds(150) }
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([provider])) { h in
            _ = try await asUser("root", admin: true) { try await h.a.usage.setQuota(.with { $0.userID = "alice"; $0.tokenBudget = 1_000 }) }
            let errors = await Self.concurrentAsks(h, 3)
            #expect(errors.allSatisfy { $0 == nil }, "\(errors)")
            #expect(try await Self.reserved(h).tokens == 0)
        }
    }

    /// A cost budget on an unpriced model: every call costs 0, yet after the first one concurrent
    /// calls are admitted (each reserves the floor) and nothing stays reserved.
    @Test(arguments: TestDatabaseKind.enabled)
    func zeroCostCallsStayConcurrentUnderACostBudget(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider()
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([provider]), configure: { $0.quotaFirstCallWaitSeconds = 0 }) { h in
            _ = try await asUser("root", admin: true) { try await h.a.usage.setQuota(.with { $0.userID = "alice"; $0.costBudget = 1 }) }
            _ = try await h.a.ask("alice", "first")
            provider.update { $0.delay = .milliseconds(150) }
            let errors = await Self.concurrentAsks(h, 4)
            #expect(errors.allSatisfy { $0 == nil }, "\(errors)")
            let reserved = try await Self.reserved(h)
            #expect(reserved.cost == 0 && reserved.tokens == 0)
            let quota = try await asUser("alice") { try await h.a.usage.getQuota(.with { $0.userID = "alice" }) }
            #expect(quota.costUsed == 0)
        }
    }

    /// Without waiting, a call next to a first call in flight hears 429 + Retry-After, not 402;
    /// alone it is admitted.
    @Test(arguments: TestDatabaseKind.enabled)
    func busyFirstCallIsNotAQuotaRefusal(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider()
        // Long enough that the second call surely comes while the first still waits, on a loaded machine too.
        provider.update { $0.delay = .seconds(3) }
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([provider]), configure: { $0.quotaFirstCallWaitSeconds = 0 }) { h in
            _ = try await asUser("root", admin: true) { try await h.a.usage.setQuota(.with { $0.userID = "alice"; $0.tokenBudget = 1_000 }) }
            async let first = rpcError { try await h.a.ask("alice", "first") }
            // The second call goes once the first holds its reservation (and waits on the provider).
            let sql = try #require(h.database.database() as? any SQLDatabase)
            #expect(try await eventually {
                try await sql.raw("SELECT id FROM ai_quota_reservation WHERE user_id = 'alice'").first() != nil
            })
            let second = await rpcError { try await h.b.ask("alice", "second") }
            #expect(await first == nil)
            #expect(second?.code == .resourceExhausted && second?.reason == "QuotaBusy" && second?.retryAfter == 1)
            provider.update { $0.delay = .zero }
            #expect(await rpcError { try await h.b.ask("alice", "alone") } == nil)
        }
    }

    /// A burst of calls far larger than the user's calls so far: each reserves its own prompt
    /// (estimated from its text), so the calls in flight see each other's size: three run, the
    /// fourth waits for them and then hears that the budget is spent, overspent by less than one
    /// call. Reserving only the largest past call ran all four at once.
    @Test(arguments: TestDatabaseKind.enabled)
    func aBurstOfLargerCallsReservesTheirOwnSize(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider()
        // The provider counts about four characters a token, as the estimate does, and answers 5.
        provider.update { $0.tokens = { request in (request.messages.reduce(0) { $0 + $1.content.count } / 4, 5) } }
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([provider]), configure: { $0.quotaFirstCallWaitSeconds = 30 }) { h in
            _ = try await asUser("root", admin: true) { try await h.a.usage.setQuota(.with { $0.userID = "alice"; $0.tokenBudget = 2_500 }) }
            _ = try await h.a.ask("alice", "a small first call")
            // Long enough that the four admissions come while the first calls run, on a loaded machine too.
            provider.update { $0.delay = .milliseconds(1_500) }
            let question = String(repeating: "long question ", count: 286)  // ~1,000 tokens
            let errors = await withTaskGroup(of: RPCError?.self) { group in
                for index in 0..<4 {
                    let instance = index.isMultiple(of: 2) ? h.a : h.b
                    group.addTask { await rpcError { try await instance.ask("alice", question) } }
                }
                return await group.reduce(into: [RPCError?]()) { $0.append($1) }
            }
            let refused = errors.compactMap { $0 }
            #expect(refused.count == 1 && refused.allSatisfy { $0.reason == "QuotaExceeded" }, "\(errors)")
            #expect(provider.snapshot.mostCompletionsAtOnce == 3)
            let quota = try await asUser("alice") { try await h.a.usage.getQuota(.with { $0.userID = "alice" }) }
            let largeCall = Int64(question.count / 4 + 5)
            #expect(quota.tokensUsed > 2_500 && quota.tokensUsed - 2_500 < largeCall, "used \(quota.tokensUsed)")
            #expect(try await Self.reserved(h).tokens == 0)
        }
    }

    /// A call in flight reserved more than is left (its estimate is above what it will spend), yet
    /// the budget is not spent: another call waits for it and is admitted once it settled, instead
    /// of hearing 402 (which the SDKs on /v1 would not retry).
    @Test(arguments: TestDatabaseKind.enabled)
    func reservationsInFlightMakeACallWaitNotFail(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider()  // every completion reports 15 tokens
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([provider]), configure: { $0.quotaFirstCallWaitSeconds = 30 }) { h in
            _ = try await asUser("root", admin: true) { try await h.a.usage.setQuota(.with { $0.userID = "alice"; $0.tokenBudget = 2_500 }) }
            _ = try await h.a.ask("alice", "a small first call")
            provider.update { $0.delay = .seconds(1) }
            async let large = rpcError { try await h.a.ask("alice", String(repeating: "x", count: 10_400)) }  // reserves ~2,600
            #expect(try await eventually { try await Self.reserved(h).tokens >= 2_600 })
            let small = await rpcError { try await h.b.ask("alice", "small") }
            #expect(small == nil, "\(String(describing: small))")
            #expect(await large == nil)
            let quota = try await asUser("alice") { try await h.a.usage.getQuota(.with { $0.userID = "alice" }) }
            #expect(quota.tokensUsed == 45)
        }
    }

    /// The store reserves the larger of the call's own estimate and the largest settled call.
    @Test(arguments: TestDatabaseKind.enabled)
    func admissionReservesTheLargerOfTheEstimateAndThePastCalls(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider()
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([provider])) { h in
            _ = try await asUser("root", admin: true) {
                try await h.a.usage.setQuota(.with { $0.userID = "alice"; $0.tokenBudget = 100_000; $0.costBudget = 50 })
            }
            _ = try await h.a.ask("alice", "settles a call of 15 tokens")
            let store = SQLQuotaStore(database: h.database)
            let large = try #require(try await store.admit(userId: "alice", estimate: CallEstimate(tokens: 4_000, cost: 2.5), now: Date()))
            #expect(large.tokens == 4_000 && large.cost == 2.5)
            let small = try #require(try await store.admit(userId: "alice", estimate: CallEstimate(tokens: 3, cost: 0), now: Date()))
            #expect(small.tokens == 15)
            #expect(small.cost > 0 && small.cost < 0.001)  // the floor: the settled call cost nothing
            #expect(try await Self.reserved(h).tokens == 4_015)
        }
    }

    /// Speech uses no tokens: a token budget still admits call after call (the floor) and is
    /// refused only once it is really spent.
    @Test(arguments: TestDatabaseKind.enabled)
    func zeroTokenSpeechKeepsWorkingUnderATokenBudget(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider()
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([provider]), configure: { $0.quotaFirstCallWaitSeconds = 0 }) { h in
            _ = try await asUser("root", admin: true) { try await h.a.usage.setQuota(.with { $0.userID = "alice"; $0.tokenBudget = 20 }) }
            for index in 0..<3 {
                _ = try await asUser("alice") { try await (index.isMultiple(of: 2) ? h.a : h.b).speech.createSpeech(.with { $0.text = "hi" }) }
            }
            #expect(try await Self.reserved(h).tokens == 0)
            _ = try await h.a.ask("alice", "15 tokens")
            _ = try await h.a.ask("alice", "another 15")
            let refused = await rpcError { try await asUser("alice") { try await h.a.speech.createSpeech(.with { $0.text = "hi" }) } }
            #expect(refused?.reason == "QuotaExceeded")
        }
    }
}
