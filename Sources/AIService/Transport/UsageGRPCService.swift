import AISaaSProtos
import Foundation
import GRPCCore
import Platform

/// `grpc.ai.v1.AiUsageService`: usage reports and quotas.
public struct UsageGRPCService: Grpc_Ai_V1_AiUsageService.SimpleServiceProtocol, DescribedService {
    let usage: UsageService
    public var serviceName: String { Grpc_Ai_V1_AiUsageService.descriptor.fullyQualifiedService }

    public func getUsage(request: Grpc_Ai_V1_UsageQuery, context: ServerContext) async throws -> Grpc_Ai_V1_UsageReport {
        var violations = Violations()
        let from = Self.instant("from", request.hasFrom ? request.from : nil, into: &violations)
        let to = Self.instant("to", request.hasTo ? request.to : nil, into: &violations)
        try violations.throwIfAny()
        let report = try await usage.report(
            userId: request.hasUserID ? request.userID : nil,
            allUsers: request.allUsers,
            from: from,
            to: to,
            current: request.hasCurrent ? Int(request.current) : nil,
            pageSize: request.hasPageSize ? Int(request.pageSize) : nil,
            apiKeyId: request.hasApiKeyID ? request.apiKeyID : nil,
            caller: try Caller.current()
        )
        return .with {
            $0.total = Grpc_Ai_V1_UsageTotals(report.total)
            $0.byDay = report.byDay.map(Grpc_Ai_V1_UsageTotals.init)
            $0.byModel = report.byModel.map(Grpc_Ai_V1_UsageTotals.init)
            $0.records = report.records.items.map(Grpc_Ai_V1_UsageRecord.init)
            $0.pagination = Grpc_Ai_V1_Pagination(report.records)
        }
    }

    /// The latest instant a filter may name: the end of year 9999, far inside what `Date` and
    /// 64-bit milliseconds hold, so no later conversion can trap.
    static let maxMilliseconds = 253_402_300_799_999.0

    /// A wire timestamp as a date, or a violation when it is NaN, infinite, negative or absurd.
    static func instant(_ property: String, _ milliseconds: Double?, into violations: inout Violations) -> Date? {
        guard let milliseconds else { return nil }
        guard milliseconds.isFinite, (0...maxMilliseconds).contains(milliseconds) else {
            violations.add(property, "\(property) must be milliseconds since the epoch, 0 to \(Int64(maxMilliseconds))")
            return nil
        }
        return Date(millisecondsSince1970: milliseconds)
    }

    public func getQuota(request: Grpc_Ai_V1_QueryQuotaRequest, context: ServerContext) async throws -> Grpc_Ai_V1_Quota {
        Grpc_Ai_V1_Quota(try await usage.quota(userId: request.userID, caller: try Caller.current()))
    }

    public func setQuota(request: Grpc_Ai_V1_SetQuotaRequest, context: ServerContext) async throws -> Grpc_Ai_V1_Quota {
        Grpc_Ai_V1_Quota(try await usage.setQuota(
            userId: request.userID,
            tokenBudget: request.hasTokenBudget ? Int(request.tokenBudget) : nil,
            costBudget: request.hasCostBudget ? request.costBudget : nil,
            resetUsage: request.resetUsage,
            caller: try Caller.current()
        ))
    }
}
