import Foundation
import Testing

/// `/ai/usage` and `/ai/quota` through the gateway's router, against the services in process.
@Suite("usage and quota routes", .serialized)
struct UsageRoutesTests {
    private static let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"count my tokens"}]}"#

    @Test("usage lists the caller's calls, by API key when asked; bad filters get 422 naming the field")
    func usageByKey() async throws {
        try await GatewayHarness.with { harness in
            let token = try await harness.registeredUser("hana")
            let first = try await harness.apiKey(token: token, name: "first")
            let second = try await harness.apiKey(token: token, name: "second")
            for key in [first.key, first.key, second.key] {
                #expect(try await harness.send(.post, "/v1/chat/completions", json: Self.chat, token: key).status == 200)
            }
            let all = try await harness.send(.get, "/ai/usage?pageSize=50", token: token)
            #expect(all.status == 200)
            #expect((all.data["results"] as? [[String: Any]])?.count == 3, "\(all.text)")
            for (key, count) in [(first, 2), (second, 1)] {
                let records = try await harness.send(.get, "/ai/usage?pageSize=50&apiKeyId=\(key.id)", token: token).data["results"] as? [[String: Any]] ?? []
                #expect(records.count == count)
                #expect(records.allSatisfy { $0["apiKeyId"] as? String == key.id && $0["status"] as? Int == 200 })
            }

            // Someone else's calls are not the caller's to see.
            let other = try await harness.registeredUser("ivan")
            #expect((try await harness.send(.get, "/ai/usage?apiKeyId=\(first.id)", token: other).data["results"] as? [Any])?.isEmpty == true)

            for (query, field) in [("from=yesterday", "from"), ("to=2026-13-01", "to"), ("from=2026-02-02&to=2026-02-01", "to"), ("allUsers=maybe", "allUsers")] {
                let refused = try await harness.send(.get, "/ai/usage?\(query)", token: token)
                #expect(refused.status == 422, "\(query): \(refused.text)")
                #expect(refused.metaProperties.contains(field), "\(query): \(refused.text)")
            }
        }
    }

    @Test("an admin sets a budget; once it is spent, /v1 answers 429 insufficient_quota that the SDKs must not retry")
    func spentBudget() async throws {
        try await GatewayHarness.with { harness in
            let token = try await harness.registeredUser("jon")
            let admin = try await harness.adminToken()
            let userId = try #require(try await harness.send(.get, "/user/current", token: token).data["id"] as? String)
            let (_, key) = try await harness.apiKey(token: token)

            // Only admins set budgets, and only for users that exist.
            #expect(try await harness.send(.put, "/ai/quota/\(userId)", json: #"{"tokenBudget":1}"#, token: token).status == 403)
            #expect(try await harness.send(.put, "/ai/quota/01ARZ3NDEKTSV4RRFFQ69G5FAV", json: #"{"tokenBudget":1}"#, token: admin).status == 404)
            let badBudget = try await harness.send(.put, "/ai/quota/\(userId)", json: #"{"tokenBudget":-5}"#, token: admin)
            #expect(badBudget.status == 422 && badBudget.metaProperties.contains("tokenBudget"), "\(badBudget.text)")

            let set = try await harness.send(.put, "/ai/quota/\(userId)", json: #"{"tokenBudget":1}"#, token: admin)
            #expect(set.status == 200 && set.data["tokenBudget"] as? Int == 1, "\(set.text)")
            // The first call is admitted (nothing used yet) and spends more than the budget.
            #expect(try await harness.send(.post, "/v1/chat/completions", json: Self.chat, token: key).status == 200)
            let own = try await harness.send(.get, "/ai/quota", token: token)
            #expect((own.data["tokensUsed"] as? Int ?? 0) > 1, "\(own.text)")

            let refused = try await harness.send(.post, "/v1/chat/completions", json: Self.chat, token: key)
            #expect(refused.status == 429)
            #expect(refused.openAIError["code"] as? String == "insufficient_quota")
            #expect(refused.headers[.init("x-should-retry")!] == "false")
            // Its usage record says what the client got (OpenAI's 429), not /ai/invoke's 402.
            let records = try #require(try await harness.send(.get, "/ai/usage?pageSize=10", token: token).data["results"] as? [[String: Any]])
            #expect(records.compactMap { $0["status"] as? Int }.sorted() == [200, 429], "\(records)")

            // A new budget with the usage reset lets calls through again.
            let reset = try await harness.send(.put, "/ai/quota/\(userId)", json: #"{"tokenBudget":100000,"resetUsage":true}"#, token: admin)
            #expect(reset.data["tokensUsed"] as? Int == 0, "\(reset.text)")
            #expect(try await harness.send(.post, "/v1/chat/completions", json: Self.chat, token: key).status == 200)
        }
    }
}
