import AKSKSigning
import Foundation
import NIOHTTP1
import Testing
import TestSupport

/// The AI endpoints driven over HTTP like a channel customer's devices, against a fake
/// OpenAI-compatible provider on loopback.
@Suite("AI flows over HTTP", .serialized)
struct AIFlowTests {
    static let providerKey = "sk-test-provider-key-0123456789"

    /// The platform with the fake provider configured as `openai`.
    static func withPlatform(
        _ kind: TestDatabaseKind, settings extra: [String: String] = [:],
        _ body: (PlatformUnderTest, FakeProvider) async throws -> Void
    ) async throws {
        let provider = try await FakeProvider.start()
        provider.requireAPIKey(providerKey)
        var settings = [
            "AI_PROVIDERS": "openai",
            "AI_PROVIDER_OPENAI_BASE_URL": provider.baseURL,
            "AI_PROVIDER_OPENAI_API_KEY": providerKey,
            "AI_PROVIDER_OPENAI_CHAT_MODEL": "gpt-test",
            "AI_PRICES": #"{"openai/gpt-test": {"promptPerMillionTokens": 1000000, "completionPerMillionTokens": 2000000}}"#,
        ]
        settings.merge(extra) { _, new in new }
        do {
            try await PlatformUnderTest.with(kind, settings: settings) { platform in try await body(platform, provider) }
        } catch {
            await provider.stop()
            throw error
        }
        await provider.stop()
    }

    /// Registers a user; answers its token and a client signing with its keys.
    static func customer(_ platform: PlatformUnderTest, _ username: String) async throws -> (token: String, client: SignedClient) {
        let registered = try await platform.register(username)
        let accessKey = try #require(registered.data["accessKey"] as? String)
        let secretKey = try #require(registered.data["secretKey"] as? String)
        return (try await platform.token(username), SignedClient(port: platform.port, accessKey: accessKey, secretKey: secretKey))
    }

    @Test("chat models: create, list, read, update, delete; another user's is 404", arguments: TestDatabaseKind.enabled)
    func chatModelsAndIsolation(kind: TestDatabaseKind) async throws {
        try await Self.withPlatform(kind) { platform, _ in
            let (alice, _) = try await Self.customer(platform, "alice")
            let (bob, _) = try await Self.customer(platform, "bob")
            let created = try await platform.request(.POST, "/ai/chat/model", json: """
                {"name":"Pirate","struct":[{"key":"system","value":"You are a pirate."}],"questionTpl":"Answer as a pirate: %question%"}
                """, token: alice)
            #expect(created.status == 200)
            let id = try #require(created.data["id"] as? String)
            #expect(created.data["provider"] as? String == "openai")
            #expect(created.data["model"] as? String == "gpt-test")

            let duplicate = try await platform.request(.POST, "/ai/chat/model", json: #"{"name":"Pirate"}"#, token: alice)
            #expect(duplicate.status == 409)
            let invalid = try await platform.request(.POST, "/ai/chat/model", json: """
                {"name":"","struct":[{"key":"robot","value":""}],"provider":"nowhere"}
                """, token: alice)
            #expect(invalid.status == 422)
            #expect(invalid.metaProperties.isSuperset(of: ["name", "struct[0].key", "struct[0].value", "provider"]))

            #expect(try await platform.request(.GET, "/ai/chat/model/\(id)", token: alice).status == 200)
            for (method, body) in [("GET", nil), ("PATCH", #"{"name":"Mine now"}"#), ("DELETE", nil)] as [(String, String?)] {
                let reply = try await HTTPTestClient(port: platform.port).send(method, "/ai/chat/model/\(id)", json: body, token: bob)
                #expect(reply.status == 404, "\(method) of another user's chat model")
            }
            let bobList = try await platform.request(.GET, "/ai/chat/model", token: bob)
            #expect((bobList.data["results"] as? [Any])?.isEmpty == true)

            let renamed = try await platform.request(.PATCH, "/ai/chat/model/\(id)", json: #"{"name":"Captain"}"#, token: alice)
            #expect(renamed.status == 200 && renamed.data["name"] as? String == "Captain")
            #expect((renamed.data["struct"] as? [Any])?.count == 1, "a PATCH without struct keeps it")
            let cleared = try await platform.request(.PATCH, "/ai/chat/model/\(id)", json: #"{"struct":[]}"#, token: alice)
            #expect(cleared.status == 200 && (cleared.data["struct"] as? [Any])?.isEmpty == true)
            let list = try await platform.request(.GET, "/ai/chat/model?current=1&pageSize=10", token: alice)
            #expect((list.data["pagination"] as? [String: Any])?["total"] as? Int == 1)
            #expect(try await platform.request(.DELETE, "/ai/chat/model/\(id)", token: alice).status == 200)
            #expect(try await platform.request(.GET, "/ai/chat/model/\(id)", token: alice).status == 404)
            #expect(try await platform.request(.GET, "/ai/chat/model", token: nil).status == 401)
        }
    }

    @Test("a signed completion assembles the chat model's messages, answers choices and is billed", arguments: TestDatabaseKind.enabled)
    func signedCompletion(kind: TestDatabaseKind) async throws {
        try await Self.withPlatform(kind) { platform, provider in
            let (token, client) = try await Self.customer(platform, "carol")
            let created = try await platform.request(.POST, "/ai/chat/model", json: """
                {"name":"Tutor","struct":[{"key":"system","value":"Be brief."},{"key":"assistant","value":"Ask away."}],"questionTpl":"Q: %question%"}
                """, token: token)
            let id = try #require(created.data["id"] as? String)

            let reply = try await client.json("/ai/invoke/chat_completion", """
                {"chatModelId":"\(id)","question":"what is two plus two","messages":[{"role":"user","content":"hi"}]}
                """)
            #expect(reply.status == 200, "\(reply.message)")
            let choices = try #require(reply.data["choices"] as? [[String: Any]])
            let message = try #require(choices.first?["message"] as? [String: Any])
            #expect(message["role"] as? String == "assistant")
            #expect((message["content"] as? String)?.contains("what is two plus two") == true)

            let sent = try #require(provider.requests(to: .chat).last?.json)
            let messages = try #require(sent["messages"] as? [[String: Any]])
            #expect(messages.map { $0["role"] as? String } == ["system", "assistant", "user", "user"])
            #expect(messages.map { $0["content"] as? String } == ["Be brief.", "Ask away.", "hi", "Q: what is two plus two"])
            #expect(sent["model"] as? String == "gpt-test")
            #expect(provider.requests(to: .chat).last?.header("authorization") == "Bearer \(Self.providerKey)")

            let usage = try await platform.request(.GET, "/ai/usage", token: token)
            #expect(usage.status == 200)
            let records = try #require(usage.data["results"] as? [[String: Any]])
            #expect(records.count == 1)
            let record = try #require(records.first)
            #expect(record["kind"] as? String == "chat" && record["status"] as? Int == 200)
            #expect((record["totalTokens"] as? Int ?? 0) > 0)
            #expect((record["cost"] as? Double ?? 0) > 0)
            #expect(record["accessKey"] as? String == client.accessKey)
        }
    }

    @Test("stream: true relays Server-Sent Events ending with [DONE]", arguments: TestDatabaseKind.enabled)
    func streamedCompletion(kind: TestDatabaseKind) async throws {
        try await Self.withPlatform(kind) { platform, provider in
            provider.setStreaming(.init(chunks: 4, interval: .milliseconds(20)))
            let (_, client) = try await Self.customer(platform, "dave")
            let stream = try await client.stream("/ai/invoke/chat_completion", #"{"question":"tell me a story","stream":true}"#)
            #expect(stream.status == 200)
            #expect(stream.contentType?.hasPrefix("text/event-stream") == true)
            #expect(stream.events.last == "data: [DONE]")
            let chunks = stream.events.dropLast().compactMap { event -> [String: Any]? in
                guard event.hasPrefix("data: ") else { return nil }
                return try? JSONSerialization.jsonObject(with: Data(event.dropFirst(6).utf8)) as? [String: Any]
            }
            #expect(chunks.count >= 4)
            let text = chunks.compactMap { (($0["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["content"] as? String }.joined()
            #expect(text.contains("tell me a story"))
            #expect(chunks.contains { $0["usage"] != nil })
            let sent = try #require(provider.requests(to: .chat).last?.json)
            #expect(sent["stream"] as? Bool == true)
        }
    }

    @Test("a client that leaves a stream cancels the provider's request; the call is still recorded")
    func streamClientDisconnect() async throws {
        try await Self.withPlatform(.sqlite) { platform, provider in
            provider.setStreaming(.init(chunks: 50, interval: .milliseconds(100)))
            let (token, client) = try await Self.customer(platform, "dora")
            let reading = Task { try await client.readFirstEvent("/ai/invoke/chat_completion", #"{"question":"a long story","stream":true}"#) }
            let first = try await reading.value
            #expect(first.hasPrefix("data: {"))
            // The client hung up after one event: the provider must see its request cancelled.
            let cancelled = await provider.waitUntil(timeout: .seconds(5)) { $0.streamsAbandoned >= 1 }
            #expect(cancelled)
            #expect(provider.counters.streamsCompleted == 0)

            var recorded: [String: Any]?
            for _ in 0..<50 where recorded == nil {
                let usage = try await platform.request(.GET, "/ai/usage", token: token)
                recorded = (usage.data["results"] as? [[String: Any]])?.first
                if recorded == nil { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(recorded?["status"] as? Int == 499)
        }
    }

    @Test("a client that leaves a plain completion cancels the provider's request; the record says 499 and books the prompt it sent, estimated; keep-alive calls are untouched")
    func plainCompletionClientLeaves() async throws {
        try await Self.withPlatform(.sqlite) { platform, provider in
            let (token, client) = try await Self.customer(platform, "dorian")
            // Calls that finish normally keep their connection and are not cancelled by anything.
            for index in 0..<3 { #expect(try await client.json("/ai/invoke/chat_completion", #"{"question":"keep \#(index)"}"#).status == 200) }
            provider.setBehavior(.hang)
            let body = Array(#"{"question":"never mind"}"#.utf8)
            let signed = try Signer(accessKey: client.accessKey, secretKey: client.secretKey).sign(
                method: "POST", url: "http://127.0.0.1:\(platform.port)/ai/invoke/chat_completion",
                headers: [("content-type", "application/json")], body: body, contentSHA256: true, nonce: Signer.makeNonce()
            )
            var head = "POST /ai/invoke/chat_completion HTTP/1.1\r\nHost: 127.0.0.1:\(platform.port)\r\nContent-Type: application/json\r\n"
            for header in signed.headersToAdd where header.name != "host" { head += "\(header.name): \(header.value)\r\n" }
            head += "Content-Length: \(body.count)\r\n\r\n"
            let connection = try await RawConnection.open(port: platform.port)
            try await connection.send(Array(head.utf8) + body)
            #expect(await provider.waitUntil(timeout: .seconds(5)) { _ in provider.requests(to: .chat).count == 4 })
            await connection.close()
            #expect(await provider.waitUntil(timeout: .seconds(5)) { $0.requestsAbandoned >= 1 })
            var record: [String: Any]?
            for _ in 0..<50 where record?["status"] as? Int != 499 {
                let usage = try await platform.request(.GET, "/ai/usage", token: token)
                record = (usage.data["results"] as? [[String: Any]])?.first
                if record?["status"] as? Int != 499 { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(record?["status"] as? Int == 499)
            // The provider had the prompt ("never mind": 3 tokens at four characters a token).
            #expect(record?["promptTokens"] as? Int == 3 && record?["completionTokens"] as? Int == 0 && record?["totalTokens"] as? Int == 3)
            #expect((record?["error"] as? String)?.contains("usage estimated: the call was cut short") == true, "\(String(describing: record))")
        }
    }

    @Test("a call past the gateway's AI_CALL_TIMEOUT_SECONDS is 504 for the client, and its usage record says so, not that the client left")
    func callPastTheTimeLimit() async throws {
        try await Self.withPlatform(.sqlite, settings: ["AI_CALL_TIMEOUT_SECONDS": "1"]) { platform, provider in
            let (token, client) = try await Self.customer(platform, "tim")
            provider.setBehavior(.hang)
            let answer = try await client.json("/ai/invoke/chat_completion", #"{"question":"take your time"}"#)
            #expect(answer.status == 504, "\(answer.status) \(answer.message)")
            var record: [String: Any]?
            for _ in 0..<50 where record?["status"] as? Int != 504 {
                let usage = try await platform.request(.GET, "/ai/usage", token: token)
                record = (usage.data["results"] as? [[String: Any]])?.first
                if record?["status"] as? Int != 504 { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(record?["status"] as? Int == 504, "\(String(describing: record))")
            #expect((record?["error"] as? String)?.contains("time limit for the call passed") == true, "\(String(describing: record))")
        }
    }

    @Test("a client that leaves before the first chunk cancels the provider's request at once")
    func streamClientLeavesEarly() async throws {
        try await Self.withPlatform(.sqlite) { platform, provider in
            provider.setBehavior(.hang)
            let (_, client) = try await Self.customer(platform, "doris")
            let reading = Task { try await client.readFirstEvent("/ai/invoke/chat_completion", #"{"question":"hello?","stream":true}"#) }
            #expect(await provider.waitUntil(timeout: .seconds(5)) { _ in !provider.requests(to: .chat).isEmpty })
            reading.cancel()
            _ = try? await reading.value
            #expect(await provider.waitUntil(timeout: .seconds(5)) { $0.requestsAbandoned >= 1 || $0.streamsAbandoned >= 1 })
        }
    }

    @Test("every AK/SK error of the protocol, over HTTP", arguments: TestDatabaseKind.enabled)
    func signatureErrors(kind: TestDatabaseKind) async throws {
        try await Self.withPlatform(kind) { platform, _ in
            let (token, client) = try await Self.customer(platform, "erin")
            let body = #"{"question":"hello"}"#
            let http = HTTPTestClient(port: platform.port)

            let missing = try await http.send("POST", "/ai/invoke/chat_completion", json: body)
            #expect(missing.status == 400 && missing.message == "InvalidHTTPAuthHeader")

            #expect(try await client.json("/ai/invoke/chat_completion", body, nonce: nil).status == 200)
            let wrongVersion = try await client.send("POST", "/ai/invoke/chat_completion", body: Array(body.utf8)) { headers in
                headers = headers.map { $0.0 == "x-authorization" ? ($0.0, $0.1.replacingOccurrences(of: "cc-auth-v1/", with: "cc-auth-v2/")) : $0 }
            }
            #expect(wrongVersion.status == 404 && wrongVersion.message == "InvalidVersion")

            let stranger = SignedClient(port: platform.port, accessKey: "ZZZZZZZZZZZZZZZZZZZZ", secretKey: client.secretKey)
            let unknownKey = try await stranger.json("/ai/invoke/chat_completion", body)
            #expect(unknownKey.status == 403 && unknownKey.message == "InvalidAccessKeyId")

            let forged = SignedClient(port: platform.port, accessKey: client.accessKey, secretKey: String(repeating: "x", count: 40))
            let mismatch = try await forged.json("/ai/invoke/chat_completion", body)
            #expect(mismatch.status == 400 && mismatch.message == "SignatureDoesNotMatch")

            let expired = try await client.send("POST", "/ai/invoke/chat_completion", body: Array(body.utf8), date: Date().addingTimeInterval(-600), expirationSeconds: 60)
            #expect(expired.status == 400 && expired.message == "RequestExpired")
            let future = try await client.send("POST", "/ai/invoke/chat_completion", body: Array(body.utf8), date: Date().addingTimeInterval(3600))
            #expect(future.status == 400 && future.message == "RequestExpired")

            let badTimestamp = try await client.send("POST", "/ai/invoke/chat_completion", body: Array(body.utf8)) { headers in
                headers = headers.map { name, value in
                    guard name == "x-authorization" else { return (name, value) }
                    var parts = value.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
                    parts[2] = "yesterday"
                    return (name, parts.joined(separator: "/"))
                }
            }
            #expect(badTimestamp.status == 400 && badTimestamp.message == "InvalidTimestamp")

            let digest = try await client.send("POST", "/ai/invoke/chat_completion", body: Array(body.utf8)) { headers in
                headers = headers.map { $0.0 == "x-cc-content-sha256" ? ($0.0, String(repeating: "0", count: 64)) : $0 }
            }
            // The digest header is signed: changing it breaks the signature before the body check.
            #expect(digest.status == 400)

            // A body changed on the way no longer matches the signed digest.
            let signedBody = try Signer(accessKey: client.accessKey, secretKey: client.secretKey).sign(
                method: "POST", url: "http://127.0.0.1:\(platform.port)/ai/invoke/chat_completion",
                headers: [("content-type", "application/json")], body: Array(body.utf8), contentSHA256: true
            )
            let swapped = try await http.send(
                "POST", "/ai/invoke/chat_completion", json: #"{"question":"something else"}"#,
                headers: signedBody.headersToAdd.filter { $0.name != "host" }.map { ($0.name, $0.value) }
            )
            #expect(swapped.status == 400 && swapped.message == "ContentDigestMismatch")

            let nonce = Signer.makeNonce()
            #expect(try await client.json("/ai/invoke/chat_completion", body, nonce: nonce).status == 200)
            let replay = try await client.json("/ai/invoke/chat_completion", body, nonce: nonce)
            #expect(replay.status == 409 && replay.message == "NonceReused")

            // The signature may travel in the query string instead of a header.
            let signed = try Signer(accessKey: client.accessKey, secretKey: client.secretKey).sign(
                method: "POST", url: "http://127.0.0.1:\(platform.port)/ai/invoke/chat_completion", headers: [("content-type", "application/json")]
            )
            let encoded = signed.authorization.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
            let viaQuery = try await http.send("POST", "/ai/invoke/chat_completion?x-authorization=\(encoded)", json: body)
            #expect(viaQuery.status == 200, "\(viaQuery.message)")

            // A disabled owner's key is refused.
            let admin = try await platform.adminToken()
            let profile = try await platform.request(.GET, "/user/current", token: token)
            let userId = try #require(profile.data["id"] as? String)
            let disable = try await platform.request(.PATCH, "/user/update_security", json: #"{"id":"\#(userId)","status":0}"#, token: admin)
            #expect(disable.status == 200)
            let denied = try await client.json("/ai/invoke/chat_completion", body)
            #expect(denied.status == 403 && denied.message == "AccessDenied")
        }
    }

    @Test("provider failures are mapped, never passed through, and the provider's key never shows")
    func providerFailures() async throws {
        try await Self.withPlatform(.sqlite, settings: ["AI_PROVIDER_OPENAI_TIMEOUT_SECONDS": "1"]) { platform, provider in
            let (_, client) = try await Self.customer(platform, "frank")
            let body = #"{"question":"hello"}"#
            let cases: [(FakeProvider.Behavior, Int)] = [
                (.fail(status: 401), 502), (.fail(status: 500), 502), (.rateLimit(retryAfterSeconds: 7), 429), (.hang, 504),
            ]
            for (behavior, status) in cases {
                provider.setBehavior(behavior)
                let reply = try await client.json("/ai/invoke/chat_completion", body)
                #expect(reply.status == status, "\(behavior) → \(reply.status) \(reply.message)")
                #expect(!String(decoding: reply.body, as: UTF8.self).contains(Self.providerKey))
                if case .rateLimit = behavior { #expect(reply.headers.first(name: "Retry-After") == "7") }
                if case .fail(401) = behavior { #expect(reply.message.contains("refused the platform's API key")) }
            }
        }
    }

    @Test("speech to text transcodes real audio with ffmpeg; bad files are 400; text to speech answers audio")
    func speech() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let wav = directory.path + "/tone.wav"
        let ffmpeg = Process()
        ffmpeg.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        ffmpeg.arguments = ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-ac", "2", wav]
        try ffmpeg.run()
        ffmpeg.waitUntilExit()
        #expect(ffmpeg.terminationStatus == 0, "ffmpeg must be installed (Debian package ffmpeg)")
        let audio = try [UInt8](Data(contentsOf: URL(fileURLWithPath: wav)))

        try await Self.withPlatform(.sqlite) { platform, provider in
            provider.setTranscriptionText("a clear tone")
            let (token, client) = try await Self.customer(platform, "grace")
            let form = SignedClient.multipart(file: audio, filename: "tone.wav", fields: ["language": "en", "prompt": "tones"])
            let reply = try await client.send("POST", "/ai/invoke/stt", body: form.body, contentType: form.contentType)
            #expect(reply.status == 200, "\(reply.message)")
            #expect(reply.data["text"] as? String == "a clear tone")
            let upload = try #require(provider.requests(to: .transcription).last?.form)
            #expect(upload.fields["language"] == "en" && upload.fields["prompt"] == "tones")
            let sentFile = try #require(upload.files["file"])
            #expect(sentFile.data.count < audio.count / 4, "transcoded to mono MP3")
            #expect(sentFile.data.starts(with: [0x49, 0x44, 0x33]) || sentFile.data.first == 0xFF, "an MP3 stream")

            let text = SignedClient.multipart(file: audio, filename: "tone.txt")
            let unsupported = try await client.send("POST", "/ai/invoke/stt", body: text.body, contentType: text.contentType)
            #expect(unsupported.status == 400 && unsupported.message.contains("flac, m4a, mp3, mp4, mpeg, mpga, ogg, wav, webm"))
            let garbage = SignedClient.multipart(file: Array(repeating: 7, count: 4096), filename: "noise.mp3")
            let undecodable = try await client.send("POST", "/ai/invoke/stt", body: garbage.body, contentType: garbage.contentType)
            #expect(undecodable.status == 400, "\(undecodable.message)")

            let speech = try await client.json("/ai/invoke/tts", #"{"text":"hello there","format":"wav"}"#)
            #expect(speech.status == 200)
            #expect(speech.headers.first(name: "Content-Type") == "audio/wav")
            #expect(!speech.body.isEmpty)
            let tooLong = try await client.json("/ai/invoke/tts", #"{"text":"\#(String(repeating: "a", count: 4097))"}"#)
            #expect(tooLong.status == 422)

            let usage = try await platform.request(.GET, "/ai/usage", token: token)
            let records = try #require(usage.data["results"] as? [[String: Any]])
            let stt = try #require(records.first { $0["kind"] as? String == "stt" && $0["status"] as? Int == 200 })
            #expect(abs((stt["audioSeconds"] as? Double ?? 0) - 2) < 0.3)
            let tts = try #require(records.first { $0["kind"] as? String == "tts" && $0["status"] as? Int == 200 })
            #expect(tts["characters"] as? Int == 11)
        }
    }

    @Test("malformed multipart uploads are 400 and the platform keeps serving (a part-header byte ≥ 0x80 used to stop the process)")
    func malformedUploads() async throws {
        try await Self.withPlatform(.sqlite) { platform, provider in
            let (token, client) = try await Self.customer(platform, "mallory")
            let bodies: [[UInt8]] = [
                Array("--B\r\n".utf8) + [0xFF] + Array(": 1\r\n\r\nabc\r\n--B--\r\n".utf8),
                Array("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\n\r\nno end".utf8),
                Array("--B\r\nContent-Disposition: form-data; name=\"file\r\n\r\nx\r\n--B--".utf8),
                Array("not multipart at all".utf8),
            ]
            for body in bodies {
                let reply = try await client.send("POST", "/ai/invoke/stt", body: body, contentType: "multipart/form-data; boundary=B")
                #expect(reply.status == 400, "\(reply.status) \(reply.message)")
                #expect(reply.json["statusCode"] as? Int == 400 && reply.message.contains("multipart"), "\(reply.message)")
            }
            #expect(provider.requests(to: .transcription).isEmpty)
            #expect(try await platform.request(.GET, "/health").status == 200)
            #expect(try await platform.request(.GET, "/user/current", token: token).status == 200)
        }
    }

    @Test("over-long ids are 404 without echoing them, and other tenants' calls in flight go on")
    func overLongIdentifiers() async throws {
        try await Self.withPlatform(.sqlite) { platform, provider in
            provider.setBehavior(.delay(.milliseconds(1200)), for: .chat)
            let (_, alice) = try await Self.customer(platform, "alice")
            let (bobToken, bob) = try await Self.customer(platform, "bob")
            let admin = try await platform.adminToken()
            // Within the 16 KiB a request line may have; longer ones are 431 at the HTTP layer.
            let long = String(repeating: "x", count: 10_000)
            try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<6 {
                    group.addTask { try await alice.json("/ai/invoke/chat_completion", #"{"question": "slow \#(index)"}"#).status }
                }
                try await Task.sleep(for: .milliseconds(300))
                let invoke = try await bob.json("/ai/invoke/chat_completion", #"{"question": "hi", "chatModelId": "\#(String(repeating: "x", count: 16_500))"}"#)
                var replies = [("invoke", invoke)]
                for (method, path, token) in [
                    (HTTPMethod.GET, "/user/\(long)", admin), (.DELETE, "/user/\(long)", admin), (.GET, "/ai/quota/\(long)", admin),
                    (.GET, "/ai/chat/model/\(long)", bobToken),
                ] {
                    replies.append(("\(method) \(path.prefix(20))", try await platform.request(method, path, token: token)))
                }
                replies.append(("put quota", try await platform.request(.PUT, "/ai/quota/\(long)", json: #"{"tokenBudget": 5}"#, token: admin)))
                for (name, reply) in replies {
                    #expect(reply.status == 404, "\(name): \(reply.status) \(reply.message)")
                    #expect(reply.body.count < 1000, "\(name) echoed the id")
                }
                let usage = try await platform.request(.GET, "/ai/usage?userId=\(long)", token: admin)
                #expect(usage.status == 422 && usage.body.count < 1000)
                let tooLong = try await platform.request(.GET, "/user/\(String(repeating: "x", count: 20_000))", token: admin)
                #expect(tooLong.status == 431 && tooLong.body.count < 1000)
                for try await status in group { #expect(status == 200) }
            }
        }
    }

    @Test("a spent quota is 402 before the provider is called; the rate limit is 429 with Retry-After", arguments: TestDatabaseKind.enabled)
    func quotaAndRateLimit(kind: TestDatabaseKind) async throws {
        try await Self.withPlatform(kind, settings: ["AI_RATE_LIMIT_PER_MINUTE": "4"]) { platform, provider in
            let (token, client) = try await Self.customer(platform, "heidi")
            let admin = try await platform.adminToken()
            let userId = try #require(try await platform.request(.GET, "/user/current", token: token).data["id"] as? String)
            let set = try await platform.request(.PUT, "/ai/quota/\(userId)", json: #"{"tokenBudget":1}"#, token: admin)
            #expect(set.status == 200 && set.data["tokenBudget"] as? Int == 1)
            #expect(try await platform.request(.PUT, "/ai/quota/\(userId)", json: #"{"tokenBudget":1}"#, token: token).status == 403)
            let nobody = try await platform.request(.PUT, "/ai/quota/01NOSUCHUSER0000000000000", json: #"{"tokenBudget":1}"#, token: admin)
            #expect(nobody.status == 404)

            #expect(try await client.json("/ai/invoke/chat_completion", #"{"question":"first"}"#).status == 200)
            let calls = provider.requests(to: .chat).count
            let refused = try await client.json("/ai/invoke/chat_completion", #"{"question":"second"}"#)
            #expect(refused.status == 402, "\(refused.message)")
            #expect(refused.message.contains("quota"))
            #expect(provider.requests(to: .chat).count == calls, "refused before reaching the provider")

            let own = try await platform.request(.GET, "/ai/quota", token: token)
            #expect((own.data["tokensUsed"] as? Int ?? 0) > 1)

            #expect(try await platform.request(.PUT, "/ai/quota/\(userId)", json: #"{"tokenBudget":null}"#, token: admin).status == 200)
            #expect(try await client.json("/ai/invoke/chat_completion", #"{"question":"third"}"#).status == 200)
            // Four a minute, in any 60 seconds: "first", "second" (refused for the quota, but
            // admitted by the rate limit, which comes first) and "third" took three; one more
            // goes through, the next is refused.
            var limited: (attempt: Int, reply: HTTPTestClient.Reply)?
            for attempt in 0..<9 where limited == nil {
                let reply = try await client.json("/ai/invoke/chat_completion", #"{"question":"call \#(attempt)"}"#)
                if reply.status == 429 { limited = (attempt, reply) } else { #expect(reply.status == 200) }
            }
            #expect(limited?.attempt == 1, "the limit of 4 a minute refused call \((limited?.attempt).map { $0 + 4 } ?? 0) of the minute")
            let refusal = try #require(limited?.reply)
            #expect(refusal.json["code"] as? Int == 701)
            #expect(Int(refusal.headers.first(name: "Retry-After") ?? "").map { (1...61).contains($0) } == true)
        }
    }

    @Test("with no provider configured the invoke routes answer 503 saying how to configure one")
    func noProvider() async throws {
        try await PlatformUnderTest.with(.sqlite) { platform in
            let (_, client) = try await Self.customer(platform, "ivan")
            let reply = try await client.json("/ai/invoke/chat_completion", #"{"question":"hello"}"#)
            #expect(reply.status == 503)
            #expect(reply.message.contains("AI_PROVIDERS"))
        }
    }
}
