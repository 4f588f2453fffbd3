import AIProviders
@testable import AIService
import AISaaSProtos
import Foundation
import GRPCCore
import Logging
import Platform
import SQLKit
import Testing
import TestSupport

@Suite("Quotas")
struct QuotaTests {
    @Test(arguments: TestDatabaseKind.enabled)
    func onlyAdminsSetQuotasAndUsersReadTheirOwn(kind: TestDatabaseKind) async throws {
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([ScriptedProvider()])) { h in
            let denied = await rpcError { try await asUser("alice") { try await h.a.usage.setQuota(.with { $0.userID = "alice"; $0.tokenBudget = 1 }) } }
            #expect(denied?.code == .permissionDenied)
            let set = try await asUser("root", admin: true) { try await h.a.usage.setQuota(.with { $0.userID = "alice"; $0.tokenBudget = 500 }) }
            #expect(set.tokenBudget == 500 && !set.hasCostBudget)
            let own = try await asUser("alice") { try await h.b.usage.getQuota(.with { $0.userID = "alice" }) }
            #expect(own.tokenBudget == 500 && own.tokensUsed == 0)
            let others = await rpcError { try await asUser("bob") { try await h.a.usage.getQuota(.with { $0.userID = "alice" }) } }
            #expect(others?.code == .permissionDenied)
            let unlimited = try await asUser("root", admin: true) { try await h.a.usage.getQuota(.with { $0.userID = "bob" }) }
            #expect(!unlimited.hasTokenBudget && !unlimited.hasCostBudget)
            let negative = await rpcError { try await asUser("root", admin: true) { try await h.a.usage.setQuota(.with { $0.userID = "bob"; $0.tokenBudget = -1; $0.costBudget = -2 }) } }
            #expect(Set(negative?.violatedProperties ?? []) == ["token_budget", "cost_budget"])
        }
    }

    /// Users without a budget skip the admission read for a moment after one: a budget set on the
    /// same replica still applies to the next call, one set on another replica within that moment.
    @Test(arguments: TestDatabaseKind.enabled)
    func aBudgetSetLaterAppliesAtOnceHereAndSoonOnOtherReplicas(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider()
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([provider])) { h in
            _ = try await h.a.ask("alice", "unbudgeted on a")
            _ = try await h.b.ask("alice", "unbudgeted on b")
            _ = try await asUser("root", admin: true) { try await h.a.usage.setQuota(.with { $0.userID = "alice"; $0.tokenBudget = 0 }) }
            let here = await rpcError { try await h.a.ask("alice", "refused on a at once") }
            #expect(here?.reason == "QuotaExceeded")
            try await Task.sleep(for: RecentlyUnbudgeted.holdsFor + .milliseconds(100))
            let there = await rpcError { try await h.b.ask("alice", "refused on b soon") }
            #expect(there?.reason == "QuotaExceeded")
        }
    }

    @Test func recentlyUnbudgetedUsersAreRememberedForAMoment() {
        let users = RecentlyUnbudgeted()
        let start = ContinuousClock.now
        #expect(!users.contains("alice", now: start))
        users.insert("alice", now: start)
        #expect(users.contains("alice", now: start + .milliseconds(500)))
        #expect(!users.contains("alice", now: start + RecentlyUnbudgeted.holdsFor))
        users.insert("bob", now: start)
        users.remove("bob")
        #expect(!users.contains("bob", now: start))
        // Past the bound, users seen more than a moment ago make room.
        for index in 0..<RecentlyUnbudgeted.pruneAbove { users.insert("user \(index)", now: start) }
        users.insert("carol", now: start + RecentlyUnbudgeted.holdsFor)
        #expect(users.count == 1)
        #expect(users.contains("carol", now: start + RecentlyUnbudgeted.holdsFor))
    }

    @Test(arguments: TestDatabaseKind.enabled)
    func spentQuotaRefusesBeforeTheProviderAndResetRestores(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider()
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([provider]), configure: {
            $0.prices = PriceTable(["openai/*": .init(promptPerMillionTokens: 1_000_000)])  // 1 per prompt token
        }) { h in
            _ = try await asUser("root", admin: true) { try await h.a.usage.setQuota(.with { $0.userID = "alice"; $0.tokenBudget = 30 }) }
            _ = try await h.a.ask("alice", "1")  // 15 tokens each
            _ = try await h.b.ask("alice", "2")
            let refused = await rpcError { try await h.b.ask("alice", "3") }
            #expect(refused?.code == .resourceExhausted && refused?.reason == "QuotaExceeded")
            #expect(refused?.message.hasPrefix("quota spent: ") == true)
            #expect(provider.snapshot.chatRequests.count == 2)
            let quota = try await asUser("alice") { try await h.a.usage.getQuota(.with { $0.userID = "alice" }) }
            #expect(quota.tokensUsed == 30 && quota.costUsed == 20)
            #expect(try await h.a.usageReport("alice").records.first?.status == 402)

            _ = try await asUser("root", admin: true) { try await h.a.usage.setQuota(.with { $0.userID = "alice"; $0.costBudget = 25; $0.resetUsage = true }) }
            _ = try await h.a.ask("alice", "5")
            _ = try await h.a.ask("alice", "6")
            _ = try await h.a.ask("alice", "7")
            let costRefused = await rpcError { try await h.a.ask("alice", "8") }
            #expect(costRefused?.reason == "QuotaExceeded")
            _ = try await h.a.ask("bob", "unlimited")
        }
    }

    /// Many concurrent calls through two replicas sharing the database: the budget is overspent
    /// by at most one call (here no call is bigger than the first, the documented condition).
    @Test(arguments: TestDatabaseKind.enabled)
    func concurrentCallsOnTwoReplicasOverspendAtMostOneCall(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider()
        provider.update {
            $0.delay = .milliseconds(15)
            $0.tokens = { request in request.messages.last?.content == "first" ? (40, 10) : (Int.random(in: 5...30), Int.random(in: 0...20)) }
        }
        let budget = 600
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([provider])) { h in
            _ = try await asUser("root", admin: true) { try await h.a.usage.setQuota(.with { $0.userID = "alice"; $0.tokenBudget = Int64(budget) }) }
            _ = try await h.a.ask("alice", "first")
            // Eight workers per replica call until the budget refuses them five times in a row.
            let outcomes = try await withThrowingTaskGroup(of: [String].self) { group in
                for worker in 0..<16 {
                    let instance = worker.isMultiple(of: 2) ? h.a : h.b
                    group.addTask {
                        var outcomes: [String] = [], refusalsInARow = 0
                        while refusalsInARow < 5 && outcomes.count < 60 {
                            let error = await rpcError { try await instance.ask("alice", "call \(worker)") }
                            outcomes.append(error?.reason ?? (error == nil ? "ok" : "\(error?.code.description ?? "")"))
                            refusalsInARow = error == nil ? 0 : refusalsInARow + 1
                            if error != nil { try await Task.sleep(for: .milliseconds(3)) }
                        }
                        return outcomes
                    }
                }
                return try await group.reduce(into: [String]()) { $0 += $1 }
            }
            #expect(Set(outcomes).isSubset(of: ["ok", "QuotaExceeded"]))
            #expect(outcomes.contains("QuotaExceeded"))
            let quota = try await asUser("alice") { try await h.a.usage.getQuota(.with { $0.userID = "alice" }) }
            #expect(quota.tokensUsed <= Int64(budget + 50))
            #expect(quota.tokensUsed > Int64(budget / 2))
            // Every reservation was released: nothing stays held once the calls are over.
            let sql = try #require(h.database.database() as? any SQLDatabase)
            let reserved = try await sql.raw("SELECT tokens_reserved FROM ai_quota WHERE user_id = 'alice'").first()
            #expect(try reserved?.decode(column: "tokens_reserved", as: Int64.self) == 0)
            let report = try await h.a.usageReport("alice") { $0.pageSize = 100 }
            #expect(report.total.requests == Int64(outcomes.count + 1))
            #expect(report.total.totalTokens == quota.tokensUsed)
            #expect(provider.snapshot.chatRequests.count == outcomes.filter { $0 == "ok" }.count + 1)
            #expect(report.total.failures == Int64(outcomes.filter { $0 == "QuotaExceeded" }.count))
        }
    }
}

@Suite("Rate limits")
struct RateLimitTests {
    @Test(arguments: TestDatabaseKind.enabled)
    func limitIsSharedByReplicasPerAccessKey(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider()
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([provider]), configure: { $0.rateLimitPerMinute = 3 }) { h in
            _ = try await h.a.ask("alice", "1")
            _ = try await h.b.ask("alice", "2")
            _ = try await h.a.ask("alice", "3")
            let limited = await rpcError { try await h.b.ask("alice", "4") }
            #expect(limited?.code == .resourceExhausted && limited?.reason == "RateLimited")
            #expect((1...61).contains(limited?.retryAfter ?? 0))
            _ = try await h.b.ask("bob", "other key")
            #expect(provider.snapshot.chatRequests.count == 4)
            #expect(try await h.a.usageReport("alice").records.first?.status == 429)
        }
    }

    /// Concurrent calls are counted together (one upsert per key for a batch), each in its own
    /// place: exactly the limit gets through, on both replicas together.
    @Test(arguments: TestDatabaseKind.enabled)
    func concurrentCallsGetThroughUpToTheLimitExactly(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider()
        provider.update { $0.delay = .milliseconds(5) }
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([provider]), configure: { $0.rateLimitPerMinute = 10 }) { h in
            let outcomes = await withTaskGroup(of: String.self) { group in
                for call in 0..<30 {
                    let instance = call.isMultiple(of: 2) ? h.a : h.b
                    group.addTask {
                        let error = await rpcError { try await instance.ask("alice", "call \(call)") }
                        return error?.reason ?? (error == nil ? "ok" : "\(error?.code.description ?? "")")
                    }
                }
                return await group.reduce(into: [String]()) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 == "ok" }.count == 10)
            #expect(outcomes.filter { $0 == "RateLimited" }.count == 20)
            #expect(provider.snapshot.chatRequests.count == 10)
        }
    }

    /// 0 is no limit at all, not the default (600 a minute): more calls than that in a minute
    /// all go through, where a limit of 3 stops the fourth.
    @Test(arguments: TestDatabaseKind.enabled)
    func zeroTurnsTheLimitOff(kind: TestDatabaseKind) async throws {
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([ScriptedProvider()]), configure: { $0.rateLimitPerMinute = 3 }) { h in
            for index in 0..<3 { _ = try await h.a.ask("alice", "\(index)") }
            #expect(await rpcError { try await h.a.ask("alice", "fourth") }?.reason == "RateLimited")
        }
        let provider = ScriptedProvider()
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([provider]), configure: { $0.rateLimitPerMinute = 0 }) { h in
            let refused = await withTaskGroup(of: Bool.self) { group in
                var refused = 0
                for index in 0..<650 {
                    // At most 50 in flight.
                    if index >= 50, await group.next() == true { refused += 1 }
                    group.addTask { await rpcError { try await (index.isMultiple(of: 2) ? h.a : h.b).ask("alice", "\(index)") } != nil }
                }
                for await failed in group where failed { refused += 1 }
                return refused
            }
            #expect(refused == 0)
            #expect(provider.snapshot.chatRequests.count == 650)
        }
    }
}

@Suite("Rate limits: the sliding window")
struct SlidingRateWindowTests {
    /// Two replicas' limiters on one database, with the time given by the test.
    private func withLimiters(_ kind: TestDatabaseKind, limit: Int, _ body: (SQLRateLimiter, SQLRateLimiter) async throws -> Void) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let location = try await kind.makeLocation(in: directory)
        let logger = Logger(label: "rate-window-test")
        let first = try ServiceDatabase(location: location, migrations: AIMigrations.all, logger: logger)
        let second = try ServiceDatabase(location: location, migrations: AIMigrations.all, logger: logger)
        do {
            try await first.migrate()
            try await second.migrate()
            try await body(
                SQLRateLimiter(database: first, limitPerMinute: limit, timeSource: .caller),
                SQLRateLimiter(database: second, limitPerMinute: limit, timeSource: .caller)
            )
        } catch {
            await first.shutdown()
            await second.shutdown()
            throw error
        }
        await first.shutdown()
        await second.shutdown()
    }

    @Test("100 calls over 20 s across a minute boundary admit 30 with a limit of 30, over two replicas", arguments: TestDatabaseKind.enabled)
    func acrossAMinuteBoundary(kind: TestDatabaseKind) async throws {
        try await withLimiters(kind, limit: 30) { a, b in
            let start = Date(timeIntervalSince1970: 1_800_000_000 - 10)  // ten seconds before a minute starts
            var admitted: [Date] = []
            for call in 0..<100 {
                let now = start.addingTimeInterval(Double(call) * 0.2)
                do {
                    try await (call.isMultiple(of: 2) ? a : b).acquire(subject: "AK-1", now: now)
                    admitted.append(now)
                } catch let error as DomainError {
                    #expect(error.reason == "RateLimited" && (1...61).contains(error.retryAfterSeconds ?? 0))
                }
            }
            #expect(admitted.count == 30)
            // Another key has a window of its own.
            try await a.acquire(subject: "AK-2", now: start.addingTimeInterval(20))
            // Once the first admissions have left the window, there is room again, not before.
            await #expect(throws: DomainError.self) { try await a.acquire(subject: "AK-1", now: start.addingTimeInterval(59)) }
            try await b.acquire(subject: "AK-1", now: start.addingTimeInterval(62))
        }
    }

    @Test("steady traffic for three minutes: no 60-second window ever holds more than the limit", arguments: TestDatabaseKind.enabled)
    func noWindowExceedsTheLimit(kind: TestDatabaseKind) async throws {
        try await withLimiters(kind, limit: 10) { a, b in
            let start = Date(timeIntervalSince1970: 1_800_000_000)
            var admitted: [Double] = []
            for step in 0..<360 {
                let offset = Double(step) * 0.5
                if (try? await (step.isMultiple(of: 3) ? a : b).acquire(subject: "AK-steady", now: start.addingTimeInterval(offset))) != nil {
                    admitted.append(offset)
                }
            }
            for (index, time) in admitted.enumerated() {
                let inWindow = admitted[index...].prefix { $0 < time + 60 }.count
                #expect(inWindow <= 10, "\(inWindow) admissions in the 60 s from \(time)")
            }
            // Not starved either: about ten per 61 seconds.
            #expect(admitted.count >= 25, "\(admitted.count)")
        }
    }
}

@Suite("Rate limits: windows kept in the process")
struct MemoryRateLimiterTests {
    @Test("100 calls over 20 s across a minute boundary admit 30 with a limit of 30; other keys count apart; room comes back as admissions leave")
    func acrossAMinuteBoundary() async throws {
        let limiter = MemoryRateLimiter(windows: RateLimitWindows(), limitPerMinute: 30)
        let start = Date(timeIntervalSince1970: 1_800_000_000 - 10)
        var admitted: [Date] = []
        var last: RateLimitState?
        for call in 0..<100 {
            let now = start.addingTimeInterval(Double(call) * 0.2)
            do {
                last = try await limiter.acquire(subject: "AK-1", now: now)
                admitted.append(now)
            } catch let error as DomainError {
                #expect(error.reason == "RateLimited" && (1...61).contains(error.retryAfterSeconds ?? 0))
                #expect(error.rateLimitPerMinute == 30)
            }
        }
        #expect(admitted.count == 30)
        #expect(last?.remaining == 0 && (last?.resetSeconds ?? 0) > 0)
        let other = try await limiter.acquire(subject: "AK-2", now: start.addingTimeInterval(20))
        #expect(other == RateLimitState(limit: 30, remaining: 29, resetSeconds: 0))
        await #expect(throws: DomainError.self) { try await limiter.acquire(subject: "AK-1", now: start.addingTimeInterval(59)) }
        try await limiter.acquire(subject: "AK-1", now: start.addingTimeInterval(62))
    }

    @Test("steady traffic for three minutes: no 60-second window ever holds more than the limit")
    func noWindowExceedsTheLimit() async throws {
        let limiter = MemoryRateLimiter(windows: RateLimitWindows(), limitPerMinute: 10)
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        var admitted: [Double] = []
        for step in 0..<360 {
            let offset = Double(step) * 0.5
            if (try? await limiter.acquire(subject: "AK-steady", now: start.addingTimeInterval(offset))) != nil {
                admitted.append(offset)
            }
        }
        for (index, time) in admitted.enumerated() {
            let inWindow = admitted[index...].prefix { $0 < time + 60 }.count
            #expect(inWindow <= 10, "\(inWindow) admissions in the 60 s from \(time)")
        }
        #expect(admitted.count >= 25, "\(admitted.count)")
    }

    @Test("concurrent calls get through up to the limit exactly; a new limit keeps the windows")
    func concurrentCallsAndNewLimit() async throws {
        let windows = RateLimitWindows()
        let limiter = MemoryRateLimiter(windows: windows, limitPerMinute: 10)
        let now = Date()
        let admitted = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<50 { group.addTask { (try? await limiter.acquire(subject: "AK-busy", now: now)) != nil } }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(admitted == 10)
        // The configuration center raises the limit: a new limiter over the same windows.
        let raised = MemoryRateLimiter(windows: windows, limitPerMinute: 12)
        #expect(try await raised.acquire(subject: "AK-busy", now: now).remaining == 1)
    }

    @Test("keys that went quiet are dropped, so memory follows the keys in use")
    func quietKeysAreDropped() async throws {
        let windows = RateLimitWindows()
        let limiter = MemoryRateLimiter(windows: windows, limitPerMinute: 100)
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        for key in 0..<1000 { try await limiter.acquire(subject: "AK-\(key)", now: start) }
        #expect(windows.trackedKeys == 1000)
        // Two minutes later, enough calls of one key to sweep the rest.
        for _ in 0..<5000 { _ = try? await limiter.acquire(subject: "AK-live", now: start.addingTimeInterval(120)) }
        #expect(windows.trackedKeys == 1)
    }
}
