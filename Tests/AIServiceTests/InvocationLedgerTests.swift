import Foundation
import Logging
import NIOCore
import Synchronization
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

    /// A ledger whose database is away for the first `failures` tries: each fails as a lost
    /// connection does; with `committedFirst`, the first try is written before its answer is lost.
    private final class FlakyLedger: InvocationLedger {
        let base: SQLInvocationLedger
        let failures: Int
        let committedFirst: Bool
        let tries = Mutex(0)

        init(base: SQLInvocationLedger, failures: Int, committedFirst: Bool = false) {
            self.base = base
            self.failures = failures
            self.committedFirst = committedFirst
        }

        func book(_ bookings: [InvocationBooking]) async -> [(any Error)?] {
            let attempt = tries.withLock { tries in
                defer { tries += 1 }
                return tries
            }
            guard attempt < failures else { return await base.book(bookings) }
            if attempt == 0, committedFirst { _ = await base.book(bookings) }
            return bookings.map { _ in IOError(errnoCode: ECONNRESET, reason: "read") }
        }
    }

    @Test("bookings the database could not take are kept and written once it answers, each counted once", arguments: TestDatabaseKind.enabled)
    func unavailableDatabaseLosesNoBooking(kind: TestDatabaseKind) async throws {
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([])) { h in
            let quotas = SQLQuotaStore(database: h.database)
            let base = SQLInvocationLedger(database: h.database, quotas: quotas)
            let sql = try #require(h.database.database() as? any SQLDatabase)
            func records() async throws -> Int64? {
                try await sql.raw("SELECT COUNT(*) AS n FROM usage_record").first()?.decode(column: "n", as: Int64.self)
            }
            let flaky = FlakyLedger(base: base, failures: 3)
            let pending = PendingBookings(ledger: flaky, maxDelay: .milliseconds(100), logger: Logger(label: "test"))
            for (index, user) in ["alice", "bob", "alice"].enumerated() {
                #expect(pending.keep(Self.booking(id: "kept-\(index)", user: user, tokens: 10, cost: 0)))
            }
            #expect(try await eventually { pending.count == 0 })
            #expect(try await records() == 3)
            #expect(try await quotas.quota(userId: "alice").tokensUsed == 20)

            // Written, but its answer lost: tried again, refused as a duplicate, counted once.
            let logs = LogRecorder()
            let lostAnswer = PendingBookings(ledger: FlakyLedger(base: base, failures: 1, committedFirst: true), logger: logs.logger())
            #expect(lostAnswer.keep(Self.booking(id: "once", user: "bob", tokens: 7, cost: 0)))
            #expect(try await eventually { lostAnswer.count == 0 })
            #expect(logs.all.contains { $0.hasPrefix("notice") && $0.contains("booked already") && $0.contains("req-once") }, "\(logs.all)")
            #expect(!logs.all.contains { $0.hasPrefix("error") }, "a duplicate of a booking that went in is no failure: \(logs.all)")
            #expect(try await records() == 4)
            #expect(try await quotas.quota(userId: "bob").tokensUsed == 17)
        }
    }

    @Test("when the process stops, kept bookings are tried once more; what the database still refuses is logged by request", arguments: TestDatabaseKind.enabled)
    func keptBookingsAtShutdown(kind: TestDatabaseKind) async throws {
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([])) { h in
            let quotas = SQLQuotaStore(database: h.database)
            let base = SQLInvocationLedger(database: h.database, quotas: quotas)
            let sql = try #require(h.database.database() as? any SQLDatabase)

            // The database answers again by the time the process stops: the last try writes them,
            // without waiting for the retry's next turn (ten seconds away here).
            let recovering = PendingBookings(ledger: base, maxDelay: .seconds(10), logger: Logger(label: "test"))
            for index in 0..<3 {
                #expect(recovering.keep(Self.booking(id: "late-\(index)", user: "carol", tokens: 5, cost: 0)))
            }
            #expect(recovering.count == 3)
            await recovering.finish()
            #expect(recovering.count == 0)
            #expect(try await quotas.quota(userId: "carol").tokensUsed == 15)
            #expect(!recovering.keep(Self.booking(id: "after-stop", user: "carol", tokens: 5, cost: 0)), "nothing is kept once stopping")

            // Still down: one batch is tried, not the 600 bookings' three (each would wait out the
            // database's timeouts while the process is told to stop); nothing is written, and the
            // log names what was lost.
            let logs = LogRecorder()
            let stillDown = FlakyLedger(base: base, failures: .max)
            let down = PendingBookings(ledger: stillDown, maxDelay: .seconds(10), logger: logs.logger())
            #expect(down.keep(Self.booking(id: "gone-1", user: "dave", tokens: 1, cost: 0)))
            #expect(down.keep(Self.booking(id: "gone-2", user: "erin", tokens: 1, cost: 0)))
            for index in 0..<598 { #expect(down.keep(Self.booking(id: "more-\(index)", user: "dave", tokens: 1, cost: 0))) }
            await down.finish()
            #expect(stillDown.tries.withLock { $0 } == 1)
            #expect(down.count == 0)
            let lost = logs.all.filter { $0.contains("lost") }
            #expect(lost.count == 1)
            #expect(lost.first.map { $0.contains("gone-1") && $0.contains("gone-2") && $0.contains("dave") && $0.contains("erin") && $0.contains("600") } == true, "\(lost)")
            let count = try await sql.raw("SELECT COUNT(*) AS n FROM usage_record WHERE user_id IN ('dave', 'erin')").first()?.decode(column: "n", as: Int64.self)
            #expect(count == 0)
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
