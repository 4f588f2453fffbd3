import Foundation
import Platform

/// Usage reports and quotas. Users see their own; admins anyone's.
public struct UsageService: Sendable {
    let usage: any UsageRepository
    let quotas: any QuotaStore

    public init(usage: any UsageRepository, quotas: any QuotaStore) {
        self.usage = usage
        self.quotas = quotas
    }

    /// Admins: `userId` given → that user's usage; omitted (or `allUsers`) → every user's.
    /// Others: their own only; another user's id or `allUsers` → permission denied.
    public func report(
        userId: String?, allUsers: Bool, from: Date?, to: Date?, current: Int?, pageSize: Int?, apiKeyId: String? = nil, caller: Caller
    ) async throws -> UsageReport {
        let page = try PageRequest.check(current: current, pageSize: pageSize)
        let named = userId.flatMap { $0.isEmpty ? nil : $0 }
        let subject: String?
        if caller.isAdmin {
            subject = allUsers ? nil : named
        } else if allUsers {
            throw DomainError(.permissionDenied, "only an admin may see every user's usage")
        } else if let named, named != caller.userId {
            throw DomainError(.permissionDenied, "only an admin may see another user's usage")
        } else {
            subject = caller.userId
        }
        if let from, let to, from > to {
            throw DomainError.invalid([FieldViolation(property: "from", constraints: ["from must not be after to"])])
        }
        let filter = UsageFilter(userId: subject, apiKeyId: apiKeyId.flatMap { $0.isEmpty ? nil : $0 }, from: from, to: to)
        async let total = usage.totals(filter)
        async let byDay = usage.totalsByDay(filter)
        async let byModel = usage.totalsByModel(filter)
        let (records, count) = try await usage.records(filter, offset: page.offset, limit: page.pageSize)
        return UsageReport(
            total: try await total, byDay: try await byDay, byModel: try await byModel,
            records: Page(items: records, current: page.current, pageSize: page.pageSize, total: count)
        )
    }

    public func quota(userId: String, caller: Caller) async throws -> Quota {
        let subject = userId.isEmpty ? caller.userId : userId
        guard caller.isAdmin || subject == caller.userId else {
            throw DomainError(.permissionDenied, "only an admin may see another user's quota")
        }
        return try await quotas.quota(userId: subject)
    }

    public func setQuota(userId: String, tokenBudget: Int?, costBudget: Double?, resetUsage: Bool, caller: Caller) async throws -> Quota {
        guard caller.isAdmin else { throw DomainError(.permissionDenied, "only an admin may set quotas") }
        var violations = Violations()
        if userId.isEmpty { violations.add("user_id", "user_id must not be empty") }
        if let tokenBudget, tokenBudget < 0 { violations.add("token_budget", "token_budget must not be negative") }
        if let costBudget, costBudget < 0 || !costBudget.isFinite { violations.add("cost_budget", "cost_budget must be a number not below 0") }
        try violations.throwIfAny()
        return try await quotas.setQuota(userId: userId, tokenBudget: tokenBudget, costBudget: costBudget, resetUsage: resetUsage, now: Date())
    }
}
