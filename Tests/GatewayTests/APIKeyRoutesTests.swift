import Foundation
import Testing

/// `/user/api_keys` through the gateway's router, against the services in process.
@Suite("API key routes", .serialized)
struct APIKeyRoutesTests {
    @Test("a key is shown once, in the answer that creates it; the list shows its prefix, never the key")
    func keyIsShownOnce() async throws {
        try await GatewayHarness.with { harness in
            let token = try await harness.registeredUser("alice")
            let created = try await harness.send(.post, "/user/api_keys", json: #"{"name":"laptop","models":["gpt-4o-mini"]}"#, token: token)
            #expect(created.status == 200, "\(created.text)")
            let key = try #require(created.data["key"] as? String)
            let prefix = try #require(created.data["prefix"] as? String)
            #expect(key.hasPrefix("sk-") && key.count >= 43)
            #expect(key.hasPrefix(prefix) && prefix.count < key.count)
            #expect(created.data["models"] as? [String] == ["gpt-4o-mini"])

            let listed = try await harness.send(.get, "/user/api_keys", token: token)
            #expect(listed.status == 200)
            let entry = try #require(listed.dataList.first)
            #expect(listed.dataList.count == 1)
            #expect(entry["id"] as? String == created.data["id"] as? String)
            #expect(entry["name"] as? String == "laptop")
            #expect(entry["prefix"] as? String == prefix)
            #expect(entry["key"] == nil)
            #expect(!listed.text.contains(key))
        }
    }

    @Test("bodies it cannot take get 422 naming the field, and no key is made", arguments: [
        (#"{}"#, "name"),
        (#"{"name":""}"#, "name"),
        (#"{"name":"\#(String(repeating: "n", count: 101))"}"#, "name"),
        (#"{"name":7}"#, "name"),
        (#"{"name":"k","models":"gpt-4o-mini"}"#, "models"),
        (#"{"name":"k","models":[""]}"#, "models"),
        (#"{"name":"k","expiresAt":-1}"#, "expiresAt"),
        (#"{"name":"k","expiresAt":"tomorrow"}"#, "expiresAt"),
    ])
    func badBodies(body: String, field: String) async throws {
        try await GatewayHarness.with { harness in
            let token = try await harness.registeredUser("bob")
            let refused = try await harness.send(.post, "/user/api_keys", json: body, token: token)
            #expect(refused.status == 422, "\(body): \(refused.text)")
            #expect(refused.json["statusCode"] as? Int == 422)
            #expect(refused.metaProperties.contains { $0.hasPrefix(field) }, "\(body): \(refused.text)")
            #expect(try await harness.send(.get, "/user/api_keys", token: token).dataList.isEmpty)
        }
    }

    @Test("a user sees and revokes only their own keys; an admin anyone's, and a revoked key stops working at once")
    func ownershipAndRevocation() async throws {
        try await GatewayHarness.with { harness in
            let alice = try await harness.registeredUser("alice")
            let bob = try await harness.registeredUser("bob")
            let admin = try await harness.adminToken()
            let (keyId, key) = try await harness.apiKey(token: alice)
            let aliceId = try #require(try await harness.send(.get, "/user/current", token: alice).data["id"] as? String)
            #expect(try await harness.send(.get, "/v1/models", token: key).status == 200)

            // Bob can neither list Alice's keys nor revoke one; the key keeps working.
            #expect(try await harness.send(.get, "/user/api_keys?userId=\(aliceId)", token: bob).status == 403)
            let bobsAttempt = try await harness.send(.delete, "/user/api_keys/\(keyId)", token: bob)
            #expect(bobsAttempt.status == 404, "\(bobsAttempt.text)")
            #expect(try await harness.send(.get, "/v1/models", token: key).status == 200)
            #expect(try await harness.send(.get, "/user/api_keys", token: bob).dataList.isEmpty)

            // The admin sees it and revokes it: refused at once, in OpenAI's error shape.
            let seen = try await harness.send(.get, "/user/api_keys?userId=\(aliceId)", token: admin)
            #expect(seen.dataList.map { $0["id"] as? String } == [keyId])
            #expect(try await harness.send(.delete, "/user/api_keys/\(keyId)", token: admin).status == 200)
            let refused = try await harness.send(.get, "/v1/models", token: key)
            #expect(refused.status == 401)
            #expect(refused.openAIError["message"] is String)
            #expect(try await harness.send(.get, "/user/api_keys", token: alice).dataList.isEmpty)
        }
    }

    @Test("without a token: 401 in the envelope; an id that is no id: 404")
    func unauthenticatedAndUnknown() async throws {
        try await GatewayHarness.with { harness in
            let anonymous = try await harness.send(.get, "/user/api_keys")
            #expect(anonymous.status == 401)
            #expect(!anonymous.message.isEmpty)
            let token = try await harness.registeredUser("carol")
            for id in ["not-an-id", "01ARZ3NDEKTSV4RRFFQ69G5FAV"] {
                let unknown = try await harness.send(.delete, "/user/api_keys/\(id)", token: token)
                #expect(unknown.status == 404, "\(id): \(unknown.text)")
            }
        }
    }
}
