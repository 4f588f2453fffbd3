import Foundation
import Platform

public enum InvocationKind: String, Sendable, Equatable, CaseIterable {
    case chat, stt, tts, embeddings
}

/// One row of usage: every invocation, successful or not.
public struct UsageRecord: Sendable, Equatable {
    public var id: String
    public var userId: String
    public var accessKey: String
    /// The API key of an OpenAI-compatible call; empty otherwise.
    public var apiKeyId: String = ""
    public var chatModelId: String
    public var provider: String
    public var model: String
    public var kind: InvocationKind
    public var consumption: Consumption
    public var cost: Double
    public var requestId: String
    public var latencyMs: Int
    /// The HTTP status the client received.
    public var status: Int
    /// Why it failed; empty on success. Never contains a secret (only DomainError messages).
    public var error: String
    public var createdAt: Date
}

/// Sums over a set of usage records.
public struct UsageTotals: Sendable, Equatable {
    /// The day (`yyyy-mm-dd`, UTC), `provider/model`, or empty for everything.
    public var key: String
    public var requests = 0
    public var failures = 0
    public var promptTokens = 0
    public var completionTokens = 0
    public var totalTokens = 0
    public var audioSeconds = 0.0
    public var characters = 0
    public var cost = 0.0

    public init(key: String) { self.key = key }
}

/// Which records a usage query covers. `userId` nil: every user.
public struct UsageFilter: Sendable, Equatable {
    public var userId: String?
    public var apiKeyId: String?
    public var from: Date?
    public var to: Date?
}

public struct UsageReport: Sendable {
    public var total: UsageTotals
    public var byDay: [UsageTotals]
    public var byModel: [UsageTotals]
    public var records: Page<UsageRecord>
}

public protocol UsageRepository: Sendable {
    func totals(_ filter: UsageFilter) async throws -> UsageTotals
    /// Oldest day first.
    func totalsByDay(_ filter: UsageFilter) async throws -> [UsageTotals]
    func totalsByModel(_ filter: UsageFilter) async throws -> [UsageTotals]
    /// Newest first.
    func records(_ filter: UsageFilter, offset: Int, limit: Int) async throws -> (records: [UsageRecord], total: Int)
}

/// A finished invocation's bookkeeping: its usage record and, if it touches the quota, its
/// settlement.
public struct InvocationBooking: Sendable {
    public var record: UsageRecord
    public var settlement: QuotaSettlement?
}

/// Books finished invocations. Concurrent invocations are booked together (see
/// `InvocationPipeline`), so one database round trip and one commit serve many calls.
public protocol InvocationLedger: Sendable {
    /// Books every booking, atomically where the store allows; one that cannot be booked must
    /// not keep the others from it. Answers, per booking and in order, the error that kept it
    /// out (nil: booked).
    func book(_ bookings: [InvocationBooking]) async -> [(any Error)?]
    /// Whether booking runs on the caller's thread without suspending (see `WriteBatcher`).
    var booksInline: Bool { get }
}

extension InvocationLedger {
    public var booksInline: Bool { false }
}
