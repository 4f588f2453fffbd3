import Foundation
import Platform
import SQLKit
import Testing
import TestSupport
@testable import AIService

@Suite("Invocation ledger")
struct InvocationLedgerTests {
    private static func booking(id: String, user: String, tokens: Int, cost: Double) -> InvocationBooking {
        let now = Date()
        return InvocationBooking(
            record: UsageRecord(
                id: id, userId: user, accessKey: "AK", chatModelId: "", provider: "openai", model: "m", kind: .chat,
                consumption: Consumption(promptTokens: tokens, completionTokens: 0, totalTokens: tokens), cost: cost,
                requestId: "req-\(id)", latencyMs: 1, status: 200, error: "", createdAt: now
            ),
            settlement: QuotaSettlement(userId: user, ticket: nil, tokens: tokens, cost: cost)
        )
    }

    @Test(arguments: TestDatabaseKind.enabled)
    func batchBooksEveryRecordAndSumsEachUsersQuota(kind: TestDatabaseKind) async throws {
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([])) { h in
            let quotas = SQLQuotaStore(database: h.database)
            let ledger = SQLInvocationLedger(database: h.database, quotas: quotas)
            let errors = await ledger.book([
                Self.booking(id: "r1", user: "alice", tokens: 10, cost: 0.5),
                Self.booking(id: "r2", user: "bob", tokens: 7, cost: 0),
                Self.booking(id: "r3", user: "alice", tokens: 5, cost: 0.25),
            ])
            #expect(errors.allSatisfy { $0 == nil })
            let alice = try await quotas.quota(userId: "alice")
            #expect(alice.tokensUsed == 15 && alice.costUsed == 0.75)
            #expect(try await quotas.quota(userId: "bob").tokensUsed == 7)
            let sql = try #require(h.database.database() as? any SQLDatabase)
            let count = try await sql.raw("SELECT COUNT(*) AS n FROM usage_record").first()?.decode(column: "n", as: Int64.self)
            #expect(count == 3)
        }
    }

    /// A first call's reservation holds the whole budget until it settles; one that never settles
    /// (its process died) holds the user up until it expires, or until an admin resets the usage,
    /// which also drops what is reserved.
    @Test(arguments: TestDatabaseKind.enabled)
    func resettingUsageDropsReservations(kind: TestDatabaseKind) async throws {
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([])) { h in
            let quotas = SQLQuotaStore(database: h.database)
            _ = try await quotas.setQuota(userId: "alice", tokenBudget: 1_000, costBudget: nil, resetUsage: false, now: Date())
            let leaked = try #require(try await quotas.admit(userId: "alice", estimate: .unknown, now: Date()))
            #expect(leaked.tokens == 1_000, "a first call reserves what is left")
            let sql = try #require(h.database.database() as? any SQLDatabase)
            func reservations() async throws -> Int64? {
                try await sql.raw("SELECT COUNT(*) AS n FROM ai_quota_reservation WHERE user_id = 'alice'").first()?.decode(column: "n", as: Int64.self)
            }
            #expect(try await reservations() == 1)
            _ = try await quotas.setQuota(userId: "alice", tokenBudget: 1_000, costBudget: nil, resetUsage: true, now: Date())
            #expect(try await reservations() == 0)
            let reserved = try await sql.raw("SELECT tokens_reserved FROM ai_quota WHERE user_id = 'alice'").first()?.decode(column: "tokens_reserved", as: Int64.self)
            #expect(reserved == 0)
            let next = try #require(try await quotas.admit(userId: "alice", estimate: .unknown, now: Date()))
            #expect(next.tokens == 1_000)
        }
    }

    /// A booking the database refuses (here a record id already taken) fails alone.
    @Test(arguments: TestDatabaseKind.enabled)
    func oneRefusedBookingDoesNotKeepTheOthersOut(kind: TestDatabaseKind) async throws {
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([])) { h in
            let quotas = SQLQuotaStore(database: h.database)
            let ledger = SQLInvocationLedger(database: h.database, quotas: quotas)
            #expect(await ledger.book([Self.booking(id: "taken", user: "alice", tokens: 1, cost: 0)]).allSatisfy { $0 == nil })
            let errors = await ledger.book([
                Self.booking(id: "fresh-1", user: "alice", tokens: 10, cost: 0),
                Self.booking(id: "taken", user: "alice", tokens: 100, cost: 0),
                Self.booking(id: "fresh-2", user: "bob", tokens: 3, cost: 0),
            ])
            #expect(errors.map { $0 == nil } == [true, false, true])
            // The refused booking's tokens were not counted; the others' were, once.
            #expect(try await quotas.quota(userId: "alice").tokensUsed == 11)
            #expect(try await quotas.quota(userId: "bob").tokensUsed == 3)
            let sql = try #require(h.database.database() as? any SQLDatabase)
            let count = try await sql.raw("SELECT COUNT(*) AS n FROM usage_record").first()?.decode(column: "n", as: Int64.self)
            #expect(count == 3)
        }
    }
}
