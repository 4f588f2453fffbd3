import Foundation
import Testing
import TestSupport

/// `/v1` through the gateway's router, against the services in process and the fake provider.
@Suite("OpenAI-compatible routes", .serialized)
struct OpenAIRoutesTests {
    @Test("models: what the key may use, one by one too; a key limited to some models sees only those")
    func models() async throws {
        try await GatewayHarness.with { harness in
            let token = try await harness.registeredUser("dana")
            let (_, key) = try await harness.apiKey(token: token)
            let list = try await harness.send(.get, "/v1/models", token: key)
            #expect(list.status == 200)
            #expect(list.json["object"] as? String == "list")
            let ids = Set((list.json["data"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String })
            #expect(ids.contains("gpt-4o-mini"))
            for entry in list.json["data"] as? [[String: Any]] ?? [] {
                #expect(entry["object"] as? String == "model" && entry["owned_by"] is String && entry["created"] is Int)
            }

            let one = try await harness.send(.get, "/v1/models/gpt-4o-mini", token: key)
            #expect(one.status == 200 && one.json["id"] as? String == "gpt-4o-mini")
            let prefixed = try await harness.send(.get, "/v1/models/openai/gpt-4o-mini", token: key)
            #expect(prefixed.status == 200 && prefixed.json["id"] as? String == "gpt-4o-mini", "\(prefixed.text)")
            let missing = try await harness.send(.get, "/v1/models/no-such-model", token: key)
            #expect(missing.status == 404)
            #expect(missing.openAIError["code"] as? String == "model_not_found")
            #expect(missing.openAIError["param"] as? String == "model")

            let (_, limited) = try await harness.apiKey(token: token, name: "limited", models: ["whisper-1"])
            let narrowed = try await harness.send(.get, "/v1/models", token: limited)
            #expect((narrowed.json["data"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String } == ["whisper-1"])
            #expect(try await harness.send(.get, "/v1/models/gpt-4o-mini", token: limited).status == 404)
            #expect(try await harness.send(.get, "/v1/models/openai/gpt-4o-mini", token: limited).status == 404)
        }
    }

    @Test("a chat completion passes every field it does not resolve to the provider and answers with the provider's body and OpenAI's headers")
    func chatCompletionPassesThrough() async throws {
        try await GatewayHarness.with { harness in
            let token = try await harness.registeredUser("erin")
            let (_, key) = try await harness.apiKey(token: token)
            let body = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"temperature":0.25,"seed":7,"a_field_from_the_future":{"x":[1,2]}}"#
            let answer = try await harness.send(.post, "/v1/chat/completions", json: body, token: key)
            #expect(answer.status == 200, "\(answer.text)")
            #expect(answer.json["object"] as? String == "chat.completion")
            #expect(!(answer.headers[.init("x-request-id")!] ?? "").isEmpty)
            #expect(answer.headers[.init("x-ratelimit-limit-requests")!] != nil)
            #expect(answer.headers[.init("x-ratelimit-remaining-requests")!] != nil)

            let sent = try #require(harness.provider.requests(to: .chat).last)
            let forwarded = try #require(try JSONSerialization.jsonObject(with: Data(sent.body)) as? [String: Any])
            #expect(forwarded["temperature"] as? Double == 0.25)
            #expect(forwarded["seed"] as? Int == 7)
            #expect((forwarded["a_field_from_the_future"] as? [String: Any])?["x"] as? [Int] == [1, 2])
            #expect(forwarded["model"] as? String == "gpt-4o-mini")
            #expect(sent.headers["authorization"] == "Bearer sk-harness-provider")
        }
    }

    @Test("a streamed completion is Server-Sent Events ending with [DONE]; usage only when the client asks for it")
    func streamedCompletion() async throws {
        try await GatewayHarness.with { harness in
            let token = try await harness.registeredUser("fay")
            let (_, key) = try await harness.apiKey(token: token)
            for includeUsage in [false, true] {
                let options = includeUsage ? #","stream_options":{"include_usage":true}"# : ""
                let body = #"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"one two three"}]\#(options)}"#
                let answer = try await harness.send(.post, "/v1/chat/completions", json: body, token: key)
                #expect(answer.status == 200)
                #expect(answer.headers[.contentType]?.hasPrefix("text/event-stream") == true)
                let events = answer.text.components(separatedBy: "\n\n").filter { !$0.isEmpty }
                #expect(events.last == "data: [DONE]")
                let chunks = events.dropLast().compactMap { event -> [String: Any]? in
                    guard event.hasPrefix("data: ") else { return nil }
                    return try? JSONSerialization.jsonObject(with: Data(event.dropFirst(6).utf8)) as? [String: Any]
                }
                #expect(chunks.allSatisfy { $0["object"] as? String == "chat.completion.chunk" })
                let usageChunks = chunks.filter { $0["usage"] is [String: Any] && ($0["choices"] as? [Any])?.isEmpty == true }
                #expect(usageChunks.count == (includeUsage ? 1 : 0), "\(events)")
                // The platform asks the provider for usage either way, so that billing is exact.
                let sent = try #require(harness.provider.requests(to: .chat).last)
                let forwarded = try JSONSerialization.jsonObject(with: Data(sent.body)) as? [String: Any]
                #expect((forwarded?["stream_options"] as? [String: Any])?["include_usage"] as? Bool == true)
            }
        }
    }

    @Test("errors come in OpenAI's shape with the status the SDKs map to their exceptions")
    func errors() async throws {
        try await GatewayHarness.with { harness in
            let token = try await harness.registeredUser("gus")
            let (_, key) = try await harness.apiKey(token: token, name: "mini-only", models: ["gpt-4o-mini"])
            let chat = { (model: String) in #"{"model":"\#(model)","messages":[{"role":"user","content":"hi"}]}"# }
            let cases: [(String, String?, String, Int)] = [
                ("no key", nil, chat("gpt-4o-mini"), 401),
                ("a key that is no key", "sk-" + String(repeating: "x", count: 48), chat("gpt-4o-mini"), 401),
                ("a JWT instead of a key", token, chat("gpt-4o-mini"), 401),
                ("not JSON", key, "{model:", 400),
                ("JSON but not an object", key, "[1,2]", 400),
                ("a model outside the key's list", key, chat("whisper-1"), 403),
                ("a model nobody offers", key, chat("no-such-model"), 404),
            ]
            let before = harness.provider.requests(to: .chat).count
            for (name, bearer, body, status) in cases {
                let answer = try await harness.send(.post, "/v1/chat/completions", json: body, token: bearer)
                #expect(answer.status == status, "\(name): \(answer.text)")
                #expect(answer.openAIError["message"] is String && answer.openAIError["type"] is String, "\(name): \(answer.text)")
                #expect(answer.json["statusCode"] == nil, "\(name): the platform's envelope instead of OpenAI's")
            }
            #expect(harness.provider.requests(to: .chat).count == before, "a refused call reached the provider")
        }
    }

    @Test("an audio file over 25 MiB is 413, though the form around it fits the body limit")
    func audioFileTooLarge() async throws {
        try await GatewayHarness.with { harness in
            let token = try await harness.registeredUser("zed")
            let (_, key) = try await harness.apiKey(token: token)
            let boundary = "b0undary"
            let body = "--\(boundary)\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
                + "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
                + String(repeating: "a", count: (25 << 20) + 1) + "\r\n--\(boundary)--\r\n"
            let reply = try await harness.send(
                .post, "/v1/audio/transcriptions", body: body, token: key, headers: [.contentType: "multipart/form-data; boundary=\(boundary)"]
            )
            #expect(reply.status == 413, "\(reply.text.prefix(300))")
            #expect(harness.provider.requests(to: .transcription).isEmpty)
        }
    }
}
