import AISaaSProtos
import Foundation
import Hummingbird
import Platform

/// `/ai/usage` and `/ai/quota`: what callers spent, and the budgets admins set.
struct UsageRoutes {
    let usage: any Grpc_Ai_V1_AiUsageService.ClientProtocol
    let users: any Grpc_User_V1_UserService.ClientProtocol

    func register(on authenticated: RouterGroup<GatewayRequestContext>, admin: RouterGroup<GatewayRequestContext>) {
        authenticated.get("/ai/usage", use: report)
        authenticated.get("/ai/quota", use: ownQuota)
        admin.get("/ai/quota/{userId}", use: quota)
        admin.put("/ai/quota/{userId}", use: setQuota)
    }

    /// `from`/`to` (milliseconds since the epoch or `yyyy-mm-dd`, UTC; `to` exclusive), paging,
    /// `apiKeyId` (the calls of one API key), and for admins `userId` (one user) or `allUsers=true`. The AI service decides who may see what.
    @Sendable func report(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let page = try PageQuery(request)
        let query = request.uri.queryParameters
        var violations = Violations()
        let from = Self.instant(query["from"].map(String.init), name: "from", violations: &violations)
        let to = Self.instant(query["to"].map(String.init), name: "to", violations: &violations)
        var allUsers = false
        if let text = query["allUsers"].map(String.init) {
            switch text.lowercased() {
            case "true", "1": allUsers = true
            case "false", "0": allUsers = false
            default: violations.add("allUsers", "allUsers must be true or false")
            }
        }
        let userId = query["userId"].map(String.init)
        if let userId, !userId.isEmpty, !Identifier.isPlausible(userId) {
            violations.add("userId", "userId must be an identifier: at most \(Identifier.maxLength) characters, none of them control characters")
        }
        let apiKeyId = query["apiKeyId"].map(String.init)
        if let apiKeyId, !apiKeyId.isEmpty, !Identifier.isPlausible(apiKeyId) {
            violations.add("apiKeyId", "apiKeyId must be an identifier: at most \(Identifier.maxLength) characters, none of them control characters")
        }
        if let from, let to, from >= to { violations.add("to", "to must be after from") }
        if !violations.isEmpty { throw APIError.invalidBody(violations.items) }

        let report = try await retryingWhenUnavailable {
            try await usage.getUsage(.with {
                if let userId, !userId.isEmpty { $0.userID = userId }
                if let apiKeyId, !apiKeyId.isEmpty { $0.apiKeyID = apiKeyId }
                $0.allUsers = allUsers
                if let from { $0.from = from }
                if let to { $0.to = to }
                $0.current = Int32(page.current)
                $0.pageSize = Int32(page.pageSize)
            })
        }
        return try ResponseBody.success(UsageReportView(report))
    }

    @Sendable func ownQuota(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        return try ResponseBody.success(QuotaView(try await retryingWhenUnavailable { try await usage.getQuota(.with { $0.userID = identity.userId }) }))
    }

    @Sendable func quota(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let userId = try await existingUser(context)
        return try ResponseBody.success(QuotaView(try await retryingWhenUnavailable { try await usage.getQuota(.with { $0.userID = userId }) }))
    }

    /// `{tokenBudget, costBudget, resetUsage}`: a budget that is absent or `null` is unlimited.
    @Sendable func setQuota(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let userId = try await existingUser(context)
        var body = try await JSONBody.read(request, context: context)
        let tokens = body.integer("tokenBudget", range: 0...Int64(1e15))
        let cost = body.number("costBudget", range: 0...1e12)
        let reset = body.bool("resetUsage")
        try body.finish()
        let quota = try await usage.setQuota(.with {
            $0.userID = userId
            if let tokens { $0.tokenBudget = tokens }
            if let cost { $0.costBudget = cost }
            $0.resetUsage = reset ?? false
        })
        return try ResponseBody.success(QuotaView(quota))
    }

    /// The path's user, who must exist: the AI service does not know users and would keep a budget
    /// for a mistyped id. 404 from the user service otherwise.
    private func existingUser(_ context: GatewayRequestContext) async throws -> String {
        let userId = try Identifier.path("userId", context, notFound: "user")
        return try await retryingWhenUnavailable { try await users.getUserById(.with { $0.id = userId }) }.id
    }

    /// Milliseconds since the epoch (digits only: `1e3` and `-0` are not instants), or a UTC day.
    static func instant(_ text: String?, name: String, violations: inout Violations) -> Double? {
        guard let text, !text.isEmpty else { return nil }
        if text.utf8.count <= 15, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }), let milliseconds = Double(text) {
            return milliseconds
        }
        if let day = utcDay(text) { return day }
        violations.add(name, "\(name) must be milliseconds since the epoch or a date yyyy-mm-dd")
        return nil
    }

    /// `yyyy-mm-dd` as the milliseconds of that day's start in UTC; nil unless it is exactly that
    /// form and a real day (no `2026-02-30`, no `2026-1-1`).
    static func utcDay(_ text: String) -> Double? {
        let bytes = Array(text.utf8)
        guard bytes.count == 10, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-") else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for byte in bytes[range] {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10), year >= 1970, (1...12).contains(month) else {
            return nil
        }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        guard let date = calendar.date(from: DateComponents(year: year, month: month, day: day)),
              calendar.component(.day, from: date) == day, calendar.component(.month, from: date) == month else { return nil }
        return date.timeIntervalSince1970 * 1000
    }
}
