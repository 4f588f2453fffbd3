import Foundation
import Testing

/// `/ai/chat/model` through the gateway's router, against the services in process.
@Suite("chat model routes", .serialized)
struct ChatModelRoutesTests {
    private static let persona = #"{"name":"tutor","struct":[{"key":"system","value":"You teach patiently."}],"questionTpl":"Explain: %question%"}"#

    @Test("create, read, change and delete a chat model; a changed struct replaces the old one")
    func lifecycle() async throws {
        try await GatewayHarness.with { harness in
            let token = try await harness.registeredUser("kim")
            let created = try await harness.send(.post, "/ai/chat/model", json: Self.persona, token: token)
            #expect(created.status == 200, "\(created.text)")
            let id = try #require(created.data["id"] as? String)
            #expect(created.data["name"] as? String == "tutor")
            #expect(created.data["questionTpl"] as? String == "Explain: %question%")
            #expect((created.data["struct"] as? [[String: String]]) == [["key": "system", "value": "You teach patiently."]])

            let read = try await harness.send(.get, "/ai/chat/model/\(id)", token: token)
            #expect(read.data["id"] as? String == id)
            let listed = try await harness.send(.get, "/ai/chat/model", token: token)
            #expect((listed.data["results"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == [id])

            let renamed = try await harness.send(.patch, "/ai/chat/model/\(id)", json: #"{"name":"coach"}"#, token: token)
            #expect(renamed.data["name"] as? String == "coach")
            #expect((renamed.data["struct"] as? [Any])?.count == 1, "a change without struct keeps it")
            let cleared = try await harness.send(.patch, "/ai/chat/model/\(id)", json: #"{"struct":[]}"#, token: token)
            #expect((cleared.data["struct"] as? [Any])?.isEmpty == true)

            #expect(try await harness.send(.delete, "/ai/chat/model/\(id)", token: token).status == 200)
            #expect(try await harness.send(.get, "/ai/chat/model/\(id)", token: token).status == 404)
        }
    }

    @Test("another user's chat model is not found, to read, change, delete or call")
    func ownership() async throws {
        try await GatewayHarness.with { harness in
            let owner = try await harness.registeredUser("lea")
            let other = try await harness.registeredUser("max")
            let id = try #require(try await harness.send(.post, "/ai/chat/model", json: Self.persona, token: owner).data["id"] as? String)
            #expect(try await harness.send(.get, "/ai/chat/model/\(id)", token: other).status == 404)
            #expect(try await harness.send(.patch, "/ai/chat/model/\(id)", json: #"{"name":"mine"}"#, token: other).status == 404)
            #expect(try await harness.send(.delete, "/ai/chat/model/\(id)", token: other).status == 404)
            let (_, key) = try await harness.apiKey(token: other)
            let call = try await harness.send(.post, "/v1/chat/completions", json: #"{"model":"\#(id)","messages":[{"role":"user","content":"hi"}]}"#, token: key)
            #expect(call.status == 404, "\(call.text)")
            #expect(try await harness.send(.get, "/ai/chat/model/\(id)", token: owner).data["name"] as? String == "tutor")
        }
    }

    @Test("used as a /v1 model, its struct comes first and its template wraps the question")
    func usedAsModel() async throws {
        try await GatewayHarness.with { harness in
            let token = try await harness.registeredUser("ned")
            let id = try #require(try await harness.send(.post, "/ai/chat/model", json: Self.persona, token: token).data["id"] as? String)
            let (_, key) = try await harness.apiKey(token: token)
            let call = try await harness.send(.post, "/v1/chat/completions", json: #"{"model":"\#(id)","messages":[{"role":"user","content":"tides"}]}"#, token: key)
            #expect(call.status == 200, "\(call.text)")
            let sent = try #require(harness.provider.requests(to: .chat).last)
            let forwarded = try #require(try JSONSerialization.jsonObject(with: Data(sent.body)) as? [String: Any])
            let messages = forwarded["messages"] as? [[String: String]] ?? []
            #expect(messages.first == ["role": "system", "content": "You teach patiently."], "\(messages)")
            #expect(messages.last?["content"]?.contains("Explain: tides") == true, "\(messages)")
            #expect(forwarded["model"] as? String != id, "the chat model's id went to the provider as the model")
        }
    }

    @Test("a change leaves absent and null fields as they were; [] clears the struct")
    func nullLeavesFieldsAlone() async throws {
        try await GatewayHarness.with { harness in
            let token = try await harness.registeredUser("pia")
            let id = try #require(try await harness.send(.post, "/ai/chat/model", json: Self.persona, token: token).data["id"] as? String)
            let renamed = try await harness.send(.patch, "/ai/chat/model/\(id)", json: #"{"name":"coach","struct":null,"questionTpl":null}"#, token: token)
            #expect(renamed.status == 200, "\(renamed.text)")
            #expect((renamed.data["struct"] as? [[String: String]]) == [["key": "system", "value": "You teach patiently."]], "\(renamed.text)")
            #expect(renamed.data["questionTpl"] as? String == "Explain: %question%")
            let cleared = try await harness.send(.patch, "/ai/chat/model/\(id)", json: #"{"struct":[]}"#, token: token)
            #expect((cleared.data["struct"] as? [Any])?.isEmpty == true, "\(cleared.text)")
        }
    }

    @Test("a template naming the question many times cannot blow a long question up: refused before the provider")
    func templateAmplification() async throws {
        try await GatewayHarness.with { harness in
            let token = try await harness.registeredUser("quinn")
            // 400 placeholders, the longest template there may be (4,000 characters).
            let template = String(repeating: "%question%", count: 400)
            let created = try await harness.send(.post, "/ai/chat/model", json: #"{"name":"echo","questionTpl":"\#(template)"}"#, token: token)
            let id = try #require(created.data["id"] as? String, "\(created.text)")
            let (_, key) = try await harness.apiKey(token: token)
            // 30,000 characters, 400 times: 12 MB of prompt from a 30 KB request.
            let long = String(repeating: "a", count: 30_000)
            let refused = try await harness.send(.post, "/v1/chat/completions", json: #"{"model":"\#(id)","messages":[{"role":"user","content":"\#(long)"}]}"#, token: key)
            #expect(refused.status == 400, "\(refused.status) \(refused.text.prefix(300))")
            let error = refused.json["error"] as? [String: Any]
            #expect((error?["message"] as? String)?.contains("too long for the chat model's template") == true, "\(refused.text.prefix(300))")
            #expect(harness.provider.requests(to: .chat).isEmpty)
            // A short question in the same template is fine.
            let fine = try await harness.send(.post, "/v1/chat/completions", json: #"{"model":"\#(id)","messages":[{"role":"user","content":"hi"}]}"#, token: key)
            #expect(fine.status == 200, "\(fine.text.prefix(300))")
        }
    }

    @Test("bodies it cannot take get 422 naming the field", arguments: [
        (#"{}"#, "name"),
        (#"{"name":"x","struct":[{"key":"system"}]}"#, "struct"),
        (#"{"name":"x","struct":"system"}"#, "struct"),
        (#"{"name":"x","questionTpl":7}"#, "questionTpl"),
        (#"{"name":"","questionTpl":"%question%"}"#, "name"),
        // PostgreSQL cannot store a NUL in text: refused by the gateway on every database.
        (#"{"name":"a\u0000b"}"#, "name"),
        (#"{"name":"x","struct":[{"key":"system","value":"v\u0000"}]}"#, "struct[0].value"),
    ])
    func badBodies(body: String, field: String) async throws {
        try await GatewayHarness.with { harness in
            let token = try await harness.registeredUser("olga")
            let refused = try await harness.send(.post, "/ai/chat/model", json: body, token: token)
            #expect(refused.status == 422, "\(body): \(refused.text)")
            #expect(refused.metaProperties.contains { $0.hasPrefix(field) }, "\(body): \(refused.text)")
            #expect((try await harness.send(.get, "/ai/chat/model", token: token).data["results"] as? [Any])?.isEmpty == true)
        }
    }
}
