import AKSKSigning
import Foundation
import NIOHTTP1
import Testing
import TestSupport

/// `/v1` driven over HTTP as an OpenAI SDK would, against the fake provider, which records what
/// it receives so that pass-through can be asserted.
@Suite("OpenAI-compatible API over HTTP", .serialized)
struct OpenAICompatibleTests {
    /// Creates an API key for the token's owner; answers the key and its id.
    static func apiKey(_ platform: PlatformUnderTest, token: String, body: String = #"{"name":"app"}"#) async throws -> (key: String, id: String) {
        let created = try await platform.request(.POST, "/user/api_keys", json: body, token: token)
        #expect(created.status == 200, "\(created.message)")
        return (try #require(created.data["key"] as? String), try #require(created.data["id"] as? String))
    }

    static func error(_ reply: PlatformUnderTest.Reply) -> [String: Any] {
        reply.json["error"] as? [String: Any] ?? [:]
    }

    @Test("API keys: created once with the key shown, listed without it, revoked at once", arguments: TestDatabaseKind.enabled)
    func apiKeyLifecycle(kind: TestDatabaseKind) async throws {
        try await AIFlowTests.withPlatform(kind) { platform, _ in
            let (token, _) = try await AIFlowTests.customer(platform, "keyowner")
            let (key, id) = try await Self.apiKey(platform, token: token, body: #"{"name":"ci","models":["gpt-test"]}"#)
            #expect(key.hasPrefix("sk-") && key.count >= 43)
            let listed = try await platform.request(.GET, "/user/api_keys", token: token)
            let keys = try #require(listed.json["data"] as? [[String: Any]])
            #expect(keys.count == 1)
            #expect(keys.first?["id"] as? String == id)
            #expect(keys.first?["key"] == nil, "the key is never shown again")
            #expect((keys.first?["prefix"] as? String).map { key.hasPrefix($0) } == true)
            #expect(keys.first?["models"] as? [String] == ["gpt-test"])

            let chat = #"{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}"#
            #expect(try await platform.request(.POST, "/v1/chat/completions", json: chat, token: key).status == 200)
            let (other, _) = try await AIFlowTests.customer(platform, "stranger")
            #expect(try await platform.request(.DELETE, "/user/api_keys/\(id)", token: other).status == 404, "another user's key")
            #expect(try await platform.request(.DELETE, "/user/api_keys/\(id)", token: token).status == 200)
            let revoked = try await platform.request(.POST, "/v1/chat/completions", json: chat, token: key)
            #expect(revoked.status == 401)
            #expect(Self.error(revoked)["code"] as? String == "invalid_api_key")
            let invalid = try await platform.request(.POST, "/user/api_keys", json: #"{"name":""}"#, token: token)
            #expect(invalid.status == 422)
            for name in [#"   "#, #"\u200b"#, #"\u202eppa"#, #"a\u0001b"#] {
                let refused = try await platform.request(.POST, "/user/api_keys", json: #"{"name":"\#(name)"}"#, token: token)
                #expect(refused.status == 422 && refused.metaProperties == ["name"], "\(name): \(refused.message)")
            }
        }
    }

    @Test("chat completions pass every field through; a chat model as model applies its struct and template", arguments: TestDatabaseKind.enabled)
    func chatPassThrough(kind: TestDatabaseKind) async throws {
        try await AIFlowTests.withPlatform(kind) { platform, fake in
            let (token, _) = try await AIFlowTests.customer(platform, "passer")
            let (key, keyId) = try await Self.apiKey(platform, token: token)
            let body = """
                {"model":"openai/gpt-test","messages":[{"role":"user","content":"hello there"}],"temperature":0.25,"top_p":0.5,
                "max_tokens":7,"max_completion_tokens":9,"stop":["x"],"n":1,"seed":42,"logprobs":false,"user":"u-1",
                "response_format":{"type":"text"},"tools":[{"type":"function","function":{"name":"weather","parameters":{"type":"object"}}}],
                "tool_choice":"none","x_future_field":{"big":1e400,"exact":0.10000000000000000001}}
                """
            let reply = try await platform.request(.POST, "/v1/chat/completions", json: body, token: key, headers: [("x-request-id", "req-openai-1")])
            #expect(reply.status == 200)
            #expect(reply.headers.first(name: "x-request-id") == "req-openai-1")
            #expect(reply.headers.first(name: "x-ratelimit-limit-requests") == "600")
            #expect(reply.headers.first(name: "x-ratelimit-remaining-requests").flatMap(Int.init).map { $0 < 600 } == true)
            #expect(reply.json["object"] as? String == "chat.completion")
            let sent = try #require(fake.requests(to: .chat).last)
            let text = String(decoding: sent.body, as: UTF8.self)
            #expect(text.contains("1e400") && text.contains("0.10000000000000000001"), "numbers pass through as written")
            // Foundation's parser refuses 1e400, so the text is read as written.
            #expect(text.hasPrefix(#"{"model":"gpt-test","messages":[{"role":"user","content":"hello there"}],"temperature":0.25,"top_p":0.5,"#))
            for field in ["max_tokens\":7", "max_completion_tokens\":9", "stop\":[\"x\"]", "n\":1", "seed\":42", "logprobs\":false", "user\":\"u-1\"",
                          "response_format\":{\"type\":\"text\"}", "tools\":[{\"type\":\"function\"", "tool_choice\":\"none\"", "x_future_field\":{"] {
                #expect(text.contains("\"" + field), "\(field) reaches the provider")
            }

            let model = try await platform.request(.POST, "/ai/chat/model", json: """
                {"name":"Pirate","struct":[{"key":"system","value":"You are a pirate."}],"questionTpl":"Arr: %question%"}
                """, token: token)
            let chatModelId = try #require(model.data["id"] as? String)
            let persona = try await platform.request(.POST, "/v1/chat/completions", json: """
                {"model":"\(chatModelId)","messages":[{"role":"user","content":"where is the gold"}]}
                """, token: key)
            #expect(persona.status == 200)
            let content = ((persona.json["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
            #expect(content == "echo: Arr: where is the gold")
            let personaSent = try #require(fake.requests(to: .chat).last?.json)
            let messages = try #require(personaSent["messages"] as? [[String: Any]])
            #expect(messages.first?["role"] as? String == "system" && messages.first?["content"] as? String == "You are a pirate.")
            #expect(personaSent["model"] as? String == "gpt-test")

            let usage = try await platform.request(.GET, "/ai/usage?apiKeyId=\(keyId)", token: token)
            let records = try #require(usage.data["results"] as? [[String: Any]])
            #expect(records.count == 2)
            #expect(records.allSatisfy { $0["apiKeyId"] as? String == keyId })
            #expect(records.contains { $0["chatModelId"] as? String == chatModelId })
            #expect((records.first?["totalTokens"] as? Int ?? 0) > 0)
            let none = try await platform.request(.GET, "/ai/usage?apiKeyId=nope", token: token)
            #expect((none.data["results"] as? [Any])?.isEmpty == true)
        }
    }

    /// The data lines of an SSE body.
    static func events(_ reply: PlatformUnderTest.Reply) -> [String] {
        String(decoding: reply.body, as: UTF8.self).components(separatedBy: "\n").filter { $0.hasPrefix("data: ") }.map { String($0.dropFirst(6)) }
    }

    @Test("streams relay OpenAI chunks; the usage chunk only when asked; the provider is always asked for usage", arguments: TestDatabaseKind.enabled)
    func streaming(kind: TestDatabaseKind) async throws {
        try await AIFlowTests.withPlatform(kind) { platform, fake in
            let (token, _) = try await AIFlowTests.customer(platform, "streamer")
            let (key, keyId) = try await Self.apiKey(platform, token: token)
            let plain = try await platform.request(.POST, "/v1/chat/completions", json: """
                {"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"one two three"}]}
                """, token: key)
            #expect(plain.status == 200)
            #expect(plain.headers.first(name: "content-type")?.hasPrefix("text/event-stream") == true)
            var events = Self.events(plain)
            #expect(events.last == "[DONE]")
            #expect(!events.contains { $0.contains("\"usage\":{") }, "no usage chunk unless asked")
            let include = try #require(fake.requests(to: .chat).last?.json?["stream_options"] as? [String: Any])
            #expect(include["include_usage"] as? Bool == true)
            let text = events.dropLast().compactMap { event -> String? in
                let chunk = (try? JSONSerialization.jsonObject(with: Data(event.utf8))) as? [String: Any]
                return ((chunk?["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["content"] as? String
            }.joined()
            #expect(text == "echo: one two three")

            let withUsage = try await platform.request(.POST, "/v1/chat/completions", json: """
                {"model":"gpt-test","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"four"}]}
                """, token: key)
            events = Self.events(withUsage)
            #expect(events.last == "[DONE]")
            let usageChunk = try #require(events.dropLast().last.flatMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] })
            #expect((usageChunk["choices"] as? [Any])?.isEmpty == true)
            #expect((usageChunk["usage"] as? [String: Any])?["total_tokens"] as? Int == 3)

            // Both streams were billed with the provider's exact usage.
            let usage = try await platform.request(.GET, "/ai/usage?apiKeyId=\(keyId)", token: token)
            let records = try #require(usage.data["results"] as? [[String: Any]])
            #expect(records.map { $0["totalTokens"] as? Int } == [3, 7])
            #expect(records.allSatisfy { ($0["error"] as? String) == nil })

            fake.setBehavior(.fail(status: 500), for: .chat)
            let failed = try await platform.request(.POST, "/v1/chat/completions", json: """
                {"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"x"}]}
                """, token: key)
            #expect(failed.status == 502)
            #expect(Self.error(failed)["type"] as? String == "server_error")
        }
    }

    @Test("errors use OpenAI's body and statuses", arguments: TestDatabaseKind.enabled)
    func errors(kind: TestDatabaseKind) async throws {
        try await AIFlowTests.withPlatform(kind) { platform, _ in
            let (token, _) = try await AIFlowTests.customer(platform, "errant")
            let (key, _) = try await Self.apiKey(platform, token: token, body: #"{"name":"narrow","models":["gpt-test"]}"#)
            let chat = #"{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}"#

            let missing = try await platform.request(.POST, "/v1/chat/completions", json: chat)
            #expect(missing.status == 401 && Self.error(missing)["code"] as? String == "invalid_api_key")
            let wrong = try await platform.request(.POST, "/v1/chat/completions", json: chat, token: "sk-" + String(repeating: "a", count: 48))
            #expect(wrong.status == 401 && Self.error(wrong)["type"] as? String == "invalid_request_error")
            #expect(wrong.headers.first(name: "x-request-id") != nil)
            let jwt = try await platform.request(.POST, "/v1/chat/completions", json: chat, token: token)
            #expect(jwt.status == 401, "a login token is not an API key")

            let unknown = try await platform.request(.POST, "/v1/chat/completions", json: #"{"model":"gpt-nothing","messages":[{"role":"user","content":"hi"}]}"#, token: key)
            #expect(unknown.status == 404 && Self.error(unknown)["code"] as? String == "model_not_found")
            #expect(Self.error(unknown)["param"] as? String == "model")
            let forbidden = try await platform.request(.POST, "/v1/audio/speech", json: #"{"model":"tts-1","input":"hi","voice":"alloy"}"#, token: key)
            #expect(forbidden.status == 403 && Self.error(forbidden)["code"] as? String == "model_not_allowed")
            let badJSON = try await platform.request(.POST, "/v1/chat/completions", json: #"{"model":"gpt-test",}"#, token: key)
            #expect(badJSON.status == 400 && Self.error(badJSON)["type"] as? String == "invalid_request_error")
            let noMessages = try await platform.request(.POST, "/v1/chat/completions", json: #"{"model":"gpt-test"}"#, token: key)
            #expect(noMessages.status == 400 && Self.error(noMessages)["param"] as? String == "messages")
            let array = try await platform.request(.POST, "/v1/chat/completions", json: "[1]", token: key)
            #expect(array.status == 400)
            let noRoute = try await platform.request(.GET, "/v1/nothing", token: key)
            #expect(noRoute.status == 404 && Self.error(noRoute)["message"] != nil)

            // Spent quota: 429 insufficient_quota, which the SDKs must not retry.
            let admin = try await platform.adminToken()
            let profile = try await platform.request(.GET, "/user/current", token: token)
            let userId = try #require(profile.data["id"] as? String)
            #expect(try await platform.request(.PUT, "/ai/quota/\(userId)", json: #"{"tokenBudget":0}"#, token: admin).status == 200)
            let spent = try await platform.request(.POST, "/v1/chat/completions", json: chat, token: key)
            #expect(spent.status == 429)
            #expect(Self.error(spent)["code"] as? String == "insufficient_quota")
            #expect(spent.headers.first(name: "x-should-retry") == "false")
        }
    }

    @Test("a provider's 200 that is not the answer asked for is a 502 in OpenAI's body, never handed on; a non-boolean stream is refused")
    func brokenProviderAnswers() async throws {
        try await AIFlowTests.withPlatform(.sqlite) { platform, fake in
            let (token, device) = try await AIFlowTests.customer(platform, "broken-answers")
            let (key, _) = try await Self.apiKey(platform, token: token)
            let chat = #"{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}"#
            let broken: [(contentType: String, body: String)] = [
                ("application/json", #"{"choices":["#), ("application/json", "{}"), ("application/json", #"{"choices":null}"#),
                ("text/html", "<html>maintenance</html>"), ("application/json", "[1,2]"),
            ]
            for answer in broken {
                fake.setBehavior(.raw(status: 200, contentType: answer.contentType, body: answer.body), for: .chat)
                let reply = try await platform.request(.POST, "/v1/chat/completions", json: chat, token: key)
                #expect(reply.status == 502, "\(answer.body): \(reply.status) \(Self.error(reply))")
                #expect((Self.error(reply)["message"] as? String)?.contains("could not be read") == true, "\(Self.error(reply))")
            }
            fake.setBehavior(.raw(status: 200, contentType: "application/json", body: #"{"object":"list"}"#), for: .embeddings)
            let embedding = try await platform.request(.POST, "/v1/embeddings", json: #"{"model":"gpt-test","input":"hi"}"#, token: key)
            #expect(embedding.status == 502, "\(Self.error(embedding))")
            for (contentType, body) in [("audio/mpeg", ""), ("application/json", #"{"error":null}"#), ("text/html", "<p>hi</p>")] {
                fake.setBehavior(.raw(status: 200, contentType: contentType, body: body), for: .speech)
                let speech = try await platform.request(.POST, "/v1/audio/speech", json: #"{"model":"gpt-test","input":"hi","voice":"alloy"}"#, token: key)
                #expect(speech.status == 502, "\(contentType) \(body): \(speech.status)")
            }
            // Speech streamed as events (`stream_format: sse`) is an answer.
            fake.setBehavior(.raw(status: 200, contentType: "text/event-stream", body: "data: {\"type\":\"speech.audio.done\"}\n\n"), for: .speech)
            let events = try await platform.request(
                .POST, "/v1/audio/speech", json: #"{"model":"gpt-test","input":"hi","voice":"alloy","stream_format":"sse"}"#, token: key
            )
            #expect(events.status == 200, "\(Self.error(events))")
            fake.setBehavior(.answer)
            #expect(try await platform.request(.POST, "/v1/chat/completions", json: chat, token: key).status == 200)

            for stream in [#""x""#, "0", "[]", "{}"] {
                let reply = try await platform.request(
                    .POST, "/v1/chat/completions", json: #"{"model":"gpt-test","stream":\#(stream),"messages":[{"role":"user","content":"hi"}]}"#, token: key
                )
                #expect(reply.status == 400 && Self.error(reply)["param"] as? String == "stream", "\(stream): \(Self.error(reply))")
            }
            let options = try await platform.request(
                .POST, "/v1/chat/completions", json: #"{"model":"gpt-test","stream":true,"stream_options":"yes","messages":[{"role":"user","content":"hi"}]}"#, token: key
            )
            #expect(options.status == 400 && Self.error(options)["param"] as? String == "stream_options", "\(Self.error(options))")

            // The signed route books what a provider reports, never a negative count: without a
            // usable count it estimates, as streams and /v1 do.
            let usage = #"{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":-1000000,"completion_tokens":-1000000,"total_tokens":-2000000}}"#
            fake.setBehavior(.raw(status: 200, contentType: "application/json", body: usage), for: .chat)
            let invoked = try await device.json("/ai/invoke/chat_completion", #"{"question":"hi"}"#)
            #expect(invoked.status == 200, "\(invoked.message)")
            let report = try await platform.request(.GET, "/ai/usage", token: token)
            let records = try #require(report.data["results"] as? [[String: Any]])
            let booked = try #require(records.first { $0["kind"] as? String == "chat" && $0["status"] as? Int == 200 })
            for field in ["promptTokens", "completionTokens", "totalTokens"] {
                #expect((booked[field] as? Int ?? -1) >= 1, "\(field): \(booked)")
            }
            fake.setBehavior(.answer)
        }
    }

    @Test("the rate limit answers 429 with Retry-After and x-ratelimit headers", arguments: TestDatabaseKind.enabled)
    func rateLimit(kind: TestDatabaseKind) async throws {
        try await AIFlowTests.withPlatform(kind, settings: ["AI_RATE_LIMIT_PER_MINUTE": "2"]) { platform, _ in
            let (token, _) = try await AIFlowTests.customer(platform, "hasty")
            let (key, _) = try await Self.apiKey(platform, token: token)
            let chat = #"{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}"#
            let first = try await platform.request(.POST, "/v1/chat/completions", json: chat, token: key)
            #expect(first.headers.first(name: "x-ratelimit-remaining-requests") == "1")
            _ = try await platform.request(.POST, "/v1/chat/completions", json: chat, token: key)
            let refused = try await platform.request(.POST, "/v1/chat/completions", json: chat, token: key)
            #expect(refused.status == 429)
            #expect(Self.error(refused)["code"] as? String == "rate_limit_exceeded")
            #expect(refused.headers.first(name: "retry-after").flatMap(Int.init).map { $0 >= 1 } == true)
            #expect(refused.headers.first(name: "x-ratelimit-limit-requests") == "2")
            #expect(refused.headers.first(name: "x-ratelimit-remaining-requests") == "0")
            #expect(refused.headers.first(name: "x-should-retry") == nil)
        }
    }

    @Test("models, embeddings, speech, transcription and translation", arguments: TestDatabaseKind.enabled)
    func otherEndpoints(kind: TestDatabaseKind) async throws {
        try await AIFlowTests.withPlatform(kind) { platform, fake in
            let (token, _) = try await AIFlowTests.customer(platform, "allround")
            let (key, keyId) = try await Self.apiKey(platform, token: token)
            let model = try await platform.request(.POST, "/ai/chat/model", json: #"{"name":"Helper"}"#, token: token)
            let chatModelId = try #require(model.data["id"] as? String)

            let models = try await platform.request(.GET, "/v1/models", token: key)
            #expect(models.json["object"] as? String == "list")
            let ids = (models.json["data"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            #expect(Set(ids) == ["gpt-test", "whisper-1", "tts-1", "text-embedding-3-small", chatModelId])
            // `provider/model` names the same model as its listed bare name, as in a chat completion.
            let one = try await platform.request(.GET, "/v1/models/openai/gpt-test", token: key)
            #expect(one.status == 200 && one.json["id"] as? String == "gpt-test", "\(one.status)")
            #expect(try await platform.request(.GET, "/v1/models/other/gpt-test", token: key).status == 404)
            // Percent-encoded, as URL builders write a name with a slash in one segment.
            for path in ["/v1/models/openai%2Fgpt-test", "/v1/models/gpt%2Dtest"] {
                let encoded = try await platform.request(.GET, path, token: key)
                #expect(encoded.status == 200 && encoded.json["id"] as? String == "gpt-test", "\(path): \(encoded.status)")
            }
            let listed = try await platform.request(.GET, "/v1/models/gpt-test", token: key)
            #expect(listed.json["object"] as? String == "model" && listed.json["owned_by"] as? String == "openai")
            #expect(try await platform.request(.GET, "/v1/models/none", token: key).status == 404)

            let embedded = try await platform.request(.POST, "/v1/embeddings", json: #"{"model":"text-embedding-3-small","input":["a b","c"]}"#, token: key)
            #expect(embedded.status == 200)
            #expect((embedded.json["data"] as? [Any])?.count == 2)
            let badInput = try await platform.request(.POST, "/v1/embeddings", json: #"{"model":"text-embedding-3-small","input":[]}"#, token: key)
            #expect(badInput.status == 400 && Self.error(badInput)["param"] as? String == "input")
            let chatAsEmbedding = try await platform.request(.POST, "/v1/embeddings", json: #"{"model":"\#(chatModelId)","input":"x"}"#, token: key)
            #expect(chatAsEmbedding.status == 404)

            let speech = try await platform.request(.POST, "/v1/audio/speech", json: #"{"model":"tts-1","input":"say this","voice":"nova","response_format":"flac","speed":1.5}"#, token: key)
            #expect(speech.status == 200)
            #expect(speech.headers.first(name: "content-type") == "audio/flac")
            #expect(Array(speech.body.prefix(4)) == Array("fLaC".utf8))
            #expect(fake.requests(to: .speech).last?.json?["speed"] as? Double == 1.5)
            let badFormat = try await platform.request(.POST, "/v1/audio/speech", json: #"{"model":"tts-1","input":"x","response_format":"ogg"}"#, token: key)
            #expect(badFormat.status == 400 && Self.error(badFormat)["param"] as? String == "response_format")
            for speed in ["10", "0.1", "\"fast\""] {
                let badSpeed = try await platform.request(.POST, "/v1/audio/speech", json: #"{"model":"tts-1","input":"x","speed":\#(speed)}"#, token: key)
                #expect(badSpeed.status == 400 && Self.error(badSpeed)["param"] as? String == "speed", "speed \(speed): \(badSpeed.status)")
            }
            let customVoice = try await platform.request(.POST, "/v1/audio/speech", json: #"{"model":"tts-1","input":"x","voice":{"id":"voice_123"}}"#, token: key)
            #expect(customVoice.status == 200, "\(customVoice.status)")
            #expect((fake.requests(to: .speech).last?.json?["voice"] as? [String: Any])?["id"] as? String == "voice_123")
            let badVoice = try await platform.request(.POST, "/v1/audio/speech", json: #"{"model":"tts-1","input":"x","voice":{"name":"x"}}"#, token: key)
            #expect(badVoice.status == 400 && Self.error(badVoice)["param"] as? String == "voice")
            // What the provider turns down is the client's request: 400, as OpenAI answers it.
            fake.setBehavior(.fail(status: 400), for: .speech)
            let turnedDown = try await platform.request(.POST, "/v1/audio/speech", json: #"{"model":"tts-1","input":"x","instructions":"whisper"}"#, token: key)
            #expect(turnedDown.status == 400 && Self.error(turnedDown)["type"] as? String == "invalid_request_error", "\(turnedDown.status)")
            fake.setBehavior(.answer, for: .speech)

            let wav = try Self.sineWAV()
            for (path, expected) in [("/v1/audio/transcriptions", "hello from the fake provider"), ("/v1/audio/translations", "translated: hello from the fake provider")] {
                let form = SignedClient.multipart(file: wav, filename: "clip.wav", fields: ["model": "whisper-1", "response_format": "text", "language": "en"])
                let reply = try await HTTPTestClient(port: platform.port).send(
                    "POST", path, bytes: form.body, token: key, contentType: form.contentType
                )
                #expect(reply.status == 200, "\(path): \(String(decoding: reply.body, as: UTF8.self))")
                #expect(String(decoding: reply.body, as: UTF8.self) == expected)
                let sent = try #require(fake.requests.last?.form)
                #expect(sent.files["file"]?.filename == "audio.mp3", "transcoded by ffmpeg")
                #expect(sent.fields["language"] == "en" && sent.fields["response_format"] == "text")
            }
            let noModel = SignedClient.multipart(file: wav, filename: "clip.wav")
            let refused = try await HTTPTestClient(port: platform.port).send("POST", "/v1/audio/transcriptions", bytes: noModel.body, token: key, contentType: noModel.contentType)
            #expect(refused.status == 400 && Self.error(refused)["param"] as? String == "model")

            let usage = try await platform.request(.GET, "/ai/usage?apiKeyId=\(keyId)", token: token)
            let kinds = Set((usage.data["results"] as? [[String: Any]] ?? []).compactMap { $0["kind"] as? String })
            #expect(kinds == ["embeddings", "tts", "stt"])
        }
    }

    /// One second of a 440 Hz tone, made by the real ffmpeg.
    static func sineWAV() throws -> [UInt8] {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let wav = directory.path + "/tone.wav"
        let ffmpeg = Process()
        ffmpeg.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        ffmpeg.arguments = ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1", wav]
        try ffmpeg.run()
        ffmpeg.waitUntilExit()
        #expect(ffmpeg.terminationStatus == 0, "ffmpeg must be installed (Debian package ffmpeg)")
        return try [UInt8](Data(contentsOf: URL(fileURLWithPath: wav)))
    }

    @Test("a client that leaves a /v1 call, plain or streamed, cancels the provider's request; the records say 499")
    func clientLeaves() async throws {
        try await AIFlowTests.withPlatform(.sqlite) { platform, fake in
            let (token, _) = try await AIFlowTests.customer(platform, "leaver")
            let (key, keyId) = try await Self.apiKey(platform, token: token)
            func send(_ body: String) async throws -> RawConnection {
                let connection = try await RawConnection.open(port: platform.port)
                try await connection.send(
                    "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(key)\r\n"
                        + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
                )
                return connection
            }
            fake.setBehavior(.hang, for: .chat)
            let plain = try await send(#"{"model":"gpt-test","messages":[{"role":"user","content":"never mind"}]}"#)
            #expect(await fake.waitUntil(timeout: .seconds(5)) { _ in fake.requests(to: .chat).count == 1 })
            await plain.close()
            #expect(await fake.waitUntil(timeout: .seconds(5)) { $0.requestsAbandoned >= 1 })

            fake.setBehavior(.answer, for: .chat)
            fake.setStreaming(.init(chunks: 50, interval: .milliseconds(100)))
            let streamed = try await send(#"{"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"a long story"}]}"#)
            #expect(await streamed.read(until: "data: {", timeout: .seconds(5)).contains("data: {"))
            await streamed.close()
            #expect(await fake.waitUntil(timeout: .seconds(5)) { $0.streamsAbandoned >= 1 })
            #expect(fake.counters.streamsCompleted == 0)

            var statuses: [Int] = []
            for _ in 0..<50 where statuses != [499, 499] {
                let usage = try await platform.request(.GET, "/ai/usage?apiKeyId=\(keyId)", token: token)
                statuses = (usage.data["results"] as? [[String: Any]] ?? []).compactMap { $0["status"] as? Int }
                if statuses != [499, 499] { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(statuses == [499, 499])
        }
    }

    @Test("a finished stream leaves its keep-alive connection open for the next request")
    func streamKeepsTheConnection() async throws {
        try await AIFlowTests.withPlatform(.sqlite) { platform, _ in
            let (token, _) = try await AIFlowTests.customer(platform, "keeper")
            let (key, _) = try await Self.apiKey(platform, token: token)
            let connection = try await RawConnection.open(port: platform.port)
            for (index, stream) in [true, true, false].enumerated() {
                let body = #"{"model":"gpt-test","stream":\#(stream),"messages":[{"role":"user","content":"hi"}]}"#
                try await connection.send(
                    "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(key)\r\n"
                        + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
                )
                let marker = stream ? "data: [DONE]" : "\"chat.completion\""
                let expected = stream ? index + 1 : 1
                let received = await connection.read(until: marker, occurrences: expected, timeout: .seconds(5))
                #expect(received.components(separatedBy: marker).count - 1 == expected, "answer \(index + 1) on the same connection")
            }
            #expect(!connection.isClosedByServer)
            await connection.close()
        }
    }

    @Test("a device that signs with cc-auth-v1 may call /v1 instead of using a key, in the header or the query", arguments: TestDatabaseKind.enabled)
    func signedRequests(kind: TestDatabaseKind) async throws {
        try await AIFlowTests.withPlatform(kind) { platform, fake in
            let (token, client) = try await AIFlowTests.customer(platform, "signer")
            let chat = #"{"model":"gpt-test","seed":7,"messages":[{"role":"user","content":"signed hello"}]}"#
            let signed = try await client.json("/v1/chat/completions", chat)
            #expect(signed.status == 200, "\(signed.body)")
            #expect(signed.json["object"] as? String == "chat.completion")
            #expect(fake.requests(to: .chat).last?.json?["seed"] as? Int == 7)
            #expect(signed.headers.first(name: "x-ratelimit-limit-requests") != nil)

            let models = try await client.send("GET", "/v1/models", digest: false, nonce: nil)
            #expect(models.status == 200 && models.json["object"] as? String == "list")

            // Presigned in the query string, as /ai/invoke accepts.
            let presigned = try Signer(accessKey: client.accessKey, secretKey: client.secretKey).sign(
                method: "POST", url: "http://127.0.0.1:\(platform.port)/v1/chat/completions", headers: [("content-type", "application/json")]
            )
            let encoded = presigned.authorization.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
            let viaQuery = try await HTTPTestClient(port: platform.port).send("POST", "/v1/chat/completions?x-authorization=\(encoded)", json: chat)
            #expect(viaQuery.status == 200, "\(viaQuery.body)")

            // A wrong signature is refused in OpenAI's error shape.
            let forged = try await client.send("POST", "/v1/chat/completions", body: Array(chat.utf8)) { headers in
                headers = headers.map { $0.0 == "x-authorization" ? ($0.0, String($0.1.dropLast(4)) + "0000") : $0 }
            }
            #expect(forged.status == 400 || forged.status == 401)
            #expect(Self.error(forged)["message"] as? String == "SignatureDoesNotMatch")

            // The calls are billed to the signer, with no API key on their records.
            let usage = try await platform.request(.GET, "/ai/usage", token: token)
            let records = try #require(usage.data["results"] as? [[String: Any]])
            #expect(records.count == 2)
            #expect(records.allSatisfy { $0["apiKeyId"] == nil || $0["apiKeyId"] is NSNull })
        }
    }

    @Test("admins list and revoke anyone's keys; a disabled owner's keys and expired keys stop working; a new password or a return to enabled leaves keys working")
    func keysOfOthersAndEndOfKeys() async throws {
        try await AIFlowTests.withPlatform(.sqlite) { platform, _ in
            let (token, _) = try await AIFlowTests.customer(platform, "owner")
            let (other, _) = try await AIFlowTests.customer(platform, "nosy")
            let admin = try await platform.adminToken()
            let profile = try await platform.request(.GET, "/user/current", token: token)
            let userId = try #require(profile.data["id"] as? String)
            let (key, keyId) = try await Self.apiKey(platform, token: token)
            let (second, _) = try await Self.apiKey(platform, token: token, body: #"{"name":"second"}"#)
            let chat = #"{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}"#

            #expect(try await platform.request(.GET, "/user/api_keys?userId=\(userId)", token: other).status == 403)
            let listed = try await platform.request(.GET, "/user/api_keys?userId=\(userId)", token: admin)
            #expect((listed.json["data"] as? [[String: Any]])?.count == 2)
            #expect(try await platform.request(.DELETE, "/user/api_keys/\(keyId)", token: admin).status == 200)
            #expect(try await platform.request(.POST, "/v1/chat/completions", json: chat, token: key).status == 401)

            // A new password ends the owner's sessions, not the keys the list still shows.
            #expect(try await platform.request(.POST, "/v1/chat/completions", json: chat, token: second).status == 200)
            let changed = try await platform.request(.PATCH, "/user/update", json: #"{"password":"another-pass-81"}"#, token: token)
            #expect(changed.status == 200, "\(changed.message)")
            #expect(try await platform.request(.GET, "/user/current", token: token).status == 401, "the old session ended")
            let afterPassword = try await platform.request(.POST, "/v1/chat/completions", json: chat, token: second)
            #expect(afterPassword.status == 200, "\(Self.error(afterPassword))")

            // Disabling the owner ends every key at once on this gateway; enabling it again brings them back.
            let disable = try await platform.request(.PATCH, "/user/update_security", json: #"{"id":"\#(userId)","status":0}"#, token: admin)
            #expect(disable.status == 200)
            let refused = try await platform.request(.POST, "/v1/chat/completions", json: chat, token: second)
            #expect(refused.status == 401 && Self.error(refused)["code"] as? String == "invalid_api_key")
            let enable = try await platform.request(.PATCH, "/user/update_security", json: #"{"id":"\#(userId)","status":1}"#, token: admin)
            #expect(enable.status == 200)
            let back = try await platform.request(.POST, "/v1/chat/completions", json: chat, token: second)
            #expect(back.status == 200, "\(Self.error(back))")

            // A key past its expiresAt is refused, even one this gateway verified a moment before.
            // Five seconds of life leave room for a loaded machine to make the key and use it once.
            let expiresAt = Int64((Date().timeIntervalSince1970 + 5) * 1000)
            let (brief, _) = try await Self.apiKey(platform, token: other, body: #"{"name":"brief","expiresAt":\#(expiresAt)}"#)
            #expect(try await platform.request(.POST, "/v1/chat/completions", json: chat, token: brief).status == 200)
            var lastStatus = 200
            try await waitUntil("the key refused once past its expiresAt", timeout: .seconds(20)) {
                lastStatus = (try? await platform.request(.POST, "/v1/chat/completions", json: chat, token: brief).status) ?? 0
                return lastStatus != 200
            }
            #expect(lastStatus == 401)
            #expect(Date().timeIntervalSince1970 * 1000 >= Double(expiresAt), "refused before its expiresAt")
        }
    }
}
