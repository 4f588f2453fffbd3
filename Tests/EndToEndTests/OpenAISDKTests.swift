import Foundation
import Testing
import TestSupport

/// `/v1` driven by the official `openai` Python package, as a customer's app drives it: the SDK's
/// own request shapes, parsing, exceptions and retries against the platform, with the fake
/// provider recording what reached it. The scenarios live in `openai_sdk_flows.py` beside this
/// file; scripts/test.sh installs the package in a virtual environment and sets
/// `OPENAI_SDK_PYTHON`.
@Suite("OpenAI Python SDK against /v1", .serialized)
struct OpenAISDKTests {
    @Test("the SDK's chat, streams, tools, chat models, embeddings, audio and models work, and what it sends reaches the provider", arguments: TestDatabaseKind.enabled)
    func flows(kind: TestDatabaseKind) async throws {
        try await AIFlowTests.withPlatform(kind) { platform, fake in
            let (token, _) = try await AIFlowTests.customer(platform, "sdk-app")
            let (key, keyId) = try await OpenAICompatibleTests.apiKey(platform, token: token)
            let pirate = try await platform.request(.POST, "/ai/chat/model", json: """
                {"name":"Pirate","struct":[{"key":"system","value":"You are a pirate."}],"questionTpl":"Arr: %question%"}
                """, token: token)
            let chatModelId = try #require(pirate.data["id"] as? String)
            let audio = try SDKScript.Scratch()
            defer { audio.remove() }

            let run = try await SDKScript.run(
                ["chat", "stream", "stream_usage", "tools", "chat_model", "embeddings", "transcription", "translation", "speech", "models"],
                config: ["base_url": platform.baseURL, "api_key": key, "chat_model": chatModelId, "audio": try audio.toneWAV()]
            )
            try Self.checkChat(fake)
            try Self.checkStreams(fake)
            try Self.checkTools(fake, run)
            try Self.checkChatModel(fake)
            try Self.checkEmbeddings(fake, run)
            try Self.checkAudio(fake)
            let ids = try #require(run.result("models")["ids"] as? [String])
            #expect(Set(ids) == ["gpt-test", "whisper-1", "tts-1", "text-embedding-3-small", chatModelId])
            try await Self.checkBilled(platform, token: token, keyId: keyId, chatModelId: chatModelId)
        }
    }

    @Test("each error is the SDK's matching exception, and a spent quota is tried once despite the SDK's retries", arguments: TestDatabaseKind.enabled)
    func errors(kind: TestDatabaseKind) async throws {
        try await AIFlowTests.withPlatform(kind) { platform, fake in
            let (token, _) = try await AIFlowTests.customer(platform, "sdk-errant")
            let (key, _) = try await OpenAICompatibleTests.apiKey(platform, token: token)
            let (revoked, revokedId) = try await OpenAICompatibleTests.apiKey(platform, token: token, body: #"{"name":"old"}"#)
            #expect(try await platform.request(.DELETE, "/user/api_keys/\(revokedId)", token: token).status == 200)
            let (narrow, _) = try await OpenAICompatibleTests.apiKey(platform, token: token, body: #"{"name":"narrow","models":["gpt-test"]}"#)
            let (quotaKey, quotaKeyId, broke) = try await Self.keyWithSpentQuota(platform)

            let run = try await SDKScript.run(
                ["bad_key", "revoked_key", "forbidden_model", "unknown_model", "bad_body", "spent_quota"],
                config: ["base_url": platform.baseURL, "api_key": key, "revoked_key": revoked, "narrow_key": narrow, "quota_key": quotaKey]
            )
            let expected = [
                "bad_key.chat": "AuthenticationError", "revoked_key": "AuthenticationError", "forbidden_model.embeddings": "PermissionDeniedError",
                "forbidden_model.speech": "PermissionDeniedError", "unknown_model": "NotFoundError", "bad_body.messages": "BadRequestError",
                "bad_body.input": "BadRequestError", "spent_quota": "RateLimitError",
            ]
            for (path, errorClass) in expected {
                #expect(run.value(at: path)["class"] as? String == errorClass, "\(path)")
            }
            #expect(run.value(at: "spent_quota")["code"] as? String == "insufficient_quota")
            #expect(run.value(at: "spent_quota")["attempts"] as? Int == 1)
            #expect(try run.result("forbidden_model")["listed"] as? [String] == ["gpt-test"], "a key lists only the models it may use")

            // Only the narrow key's allowed call reached the provider: refusals never do.
            #expect(fake.requests(to: .chat).compactMap { Self.lastUserText($0.json) } == ["allowed"])
            #expect(fake.requests(to: .embeddings).isEmpty && fake.requests(to: .speech).isEmpty)
            // The platform saw the spent-quota call once: every refusal is recorded, with the
            // status the caller got (OpenAI's 429 on /v1; /ai/invoke answers a spent budget 402).
            let usage = try await platform.request(.GET, "/ai/usage?apiKeyId=\(quotaKeyId)", token: broke)
            let records = try #require(usage.data["results"] as? [[String: Any]])
            #expect(records.map { $0["status"] as? Int } == [429], "\(records)")
        }
    }

    @Test("the SDK reads the rate limit from x-ratelimit headers and gets RateLimitError once it is spent", arguments: TestDatabaseKind.enabled)
    func rateLimit(kind: TestDatabaseKind) async throws {
        try await AIFlowTests.withPlatform(kind, settings: ["AI_RATE_LIMIT_PER_MINUTE": "3"]) { platform, fake in
            let (token, _) = try await AIFlowTests.customer(platform, "sdk-hasty")
            let (key, _) = try await OpenAICompatibleTests.apiKey(platform, token: token)
            let run = try await SDKScript.run(["rate_limit"], config: ["base_url": platform.baseURL, "api_key": key, "rate_limit": 3])
            #expect(run.value(at: "rate_limit.refused")["code"] as? String == "rate_limit_exceeded")
            #expect(fake.requests(to: .chat).count == 3, "the refused call never reached the provider")
        }
    }

    @Test("a key revoked through one gateway is refused there at once and by the other gateway within the revocation poll", arguments: TestDatabaseKind.enabled)
    func revocationAcrossGateways(kind: TestDatabaseKind) async throws {
        try await SeparateProcesses.with(kind) { topology in
            let (a, b) = (topology.gateways[0], topology.gateways[1])
            let (key, keyId, token) = try await Self.registerWithKey(through: a, topology)
            let config: [String: any Sendable] = [
                "base_url": "http://127.0.0.1:\(a.port)/v1", "second_base_url": "http://127.0.0.1:\(b.port)/v1",
                "api_key": key, "revocation_timeout": 10,
            ]
            // Both gateways have served (and so remember) the key before it is revoked.
            _ = try await SDKScript.run(["key_works_on_both"], config: config)
            #expect(try await a.send("DELETE", "/user/api_keys/\(keyId)", token: token).status == 200)
            let run = try await SDKScript.run(["revoked_on_both"], config: config)
            #expect(run.value(at: "revoked_on_both.a")["class"] as? String == "AuthenticationError")
            #expect(run.value(at: "revoked_on_both.b")["code"] as? String == "invalid_api_key")
            let seconds = try #require(run.result("revoked_on_both")["b_seconds"] as? Double)
            #expect(seconds < 10)
        }
    }

    /// A new user registered through `gateway`, and an API key of theirs: the key, its id and the user's token.
    static func registerWithKey(through gateway: HTTPTestClient, _ topology: SeparateProcesses) async throws -> (key: String, keyId: String, token: String) {
        let registered = try await firstCall(topology.processes) {
            try await gateway.send("POST", "/user/register", json: #"{"username":"sdk-owner","password":"password123"}"#)
        }
        #expect(registered.status == 200, "\(registered.message); logs: \(topology.processes.allLogs())")
        let login = try await gateway.send("PUT", "/auth/login", json: #"{"username":"sdk-owner","password":"password123"}"#)
        let token = try #require(login.data["accessToken"] as? String)
        let created = try await gateway.send("POST", "/user/api_keys", json: #"{"name":"shared"}"#, token: token)
        return (try #require(created.data["key"] as? String), try #require(created.data["id"] as? String), token)
    }

    // MARK: - What reached the provider

    /// The text of the last user message of a recorded chat body.
    static func lastUserText(_ body: [String: Any]?) -> String? {
        let messages = body?["messages"] as? [[String: Any]] ?? []
        return messages.last { $0["role"] as? String == "user" }?["content"] as? String
    }

    /// The recorded chat bodies whose last user message is `text`.
    static func sentChats(_ fake: FakeProvider, lastUser text: String) -> [[String: Any]] {
        fake.requests(to: .chat).compactMap(\.json).filter { lastUserText($0) == text }
    }

    static func checkChat(_ fake: FakeProvider) throws {
        let request = try #require(fake.requests(to: .chat).first { lastUserText($0.json) == "hello sdk" })
        let sent = try #require(request.json)
        #expect(sent["model"] as? String == "gpt-test")
        #expect(sent["temperature"] as? Double == 0.25 && sent["top_p"] as? Double == 0.5)
        #expect(sent["max_tokens"] as? Int == 7 && sent["seed"] as? Int == 42 && sent["n"] as? Int == 1)
        #expect(sent["user"] as? String == "sdk-user-1" && sent["stop"] as? [String] == ["zzz"])
        #expect((sent["x_future_field"] as? [String: Any])?["kept"] as? Bool == true, "extra_body fields pass through")
        #expect((sent["messages"] as? [[String: Any]])?.first?["content"] as? String == "Be brief.")
        // The provider sees the platform's key, never the customer's.
        #expect(request.header("authorization") == "Bearer \(AIFlowTests.providerKey)")
    }

    static func checkStreams(_ fake: FakeProvider) throws {
        for text in ["one two three", "four five"] {
            let sent = try #require(sentChats(fake, lastUser: text).first, "\(text) was not sent")
            #expect(sent["stream"] as? Bool == true)
            #expect((sent["stream_options"] as? [String: Any])?["include_usage"] as? Bool == true, "the provider is always asked for usage")
        }
    }

    static func checkTools(_ fake: FakeProvider, _ run: SDKScript.Run) throws {
        let callId = try #require(run.result("tools")["tool_call_id"] as? String)
        let sent = sentChats(fake, lastUser: "what is the weather in paris")
        try #require(sent.count == 2, "\(sent.count) tool requests")
        let tool = ((sent[0]["tools"] as? [[String: Any]])?.first?["function"] as? [String: Any])
        #expect(tool?["name"] as? String == "weather" && (tool?["parameters"] as? [String: Any])?["type"] as? String == "object")
        #expect(sent[0]["tool_choice"] as? String == "auto")
        let messages = try #require(sent[1]["messages"] as? [[String: Any]])
        #expect(messages.map { $0["role"] as? String } == ["user", "assistant", "tool"])
        let assistantCall = (messages[1]["tool_calls"] as? [[String: Any]])?.first
        #expect(assistantCall?["id"] as? String == callId)
        #expect((assistantCall?["function"] as? [String: Any])?["arguments"] as? String == #"{"city":"Paris"}"#)
        #expect(messages[2]["tool_call_id"] as? String == callId && messages[2]["content"] as? String == "18C and sunny")
        #expect(sent[1]["tools"] != nil)
    }

    static func checkChatModel(_ fake: FakeProvider) throws {
        for question in ["where is the gold", "where is the ship"] {
            let sent = try #require(sentChats(fake, lastUser: "Arr: \(question)").first, "the template was not applied to \(question)")
            let messages = try #require(sent["messages"] as? [[String: Any]])
            #expect(messages.first?["role"] as? String == "system" && messages.first?["content"] as? String == "You are a pirate.")
            #expect(sent["model"] as? String == "gpt-test")
        }
    }

    static func checkEmbeddings(_ fake: FakeProvider, _ run: SDKScript.Run) throws {
        let formats = fake.requests(to: .embeddings).map { $0.json?["encoding_format"] as? String }
        #expect(formats == ["base64", "float", "base64", "base64"], "the SDK asks for base64 unless told otherwise")
        let vectors = try #require(run.result("embeddings")["vectors"] as? [[Double]])
        #expect(vectors.map { $0.map(Float.init) } == ["a b", "c"].map(FakeProvider.embedding(of:)), "the SDK decoded the provider's float32s exactly")
    }

    static func checkAudio(_ fake: FakeProvider) throws {
        let transcriptions = fake.requests(to: .transcription).compactMap(\.form)
        #expect(transcriptions.map { $0.fields["response_format"] } == ["json", "text", "verbose_json"])
        let first = try #require(transcriptions.first)
        #expect(first.fields["model"] == "whisper-1" && first.fields["language"] == "en")
        #expect(first.fields["prompt"] == "a tone" && first.fields["temperature"] == "0.2")
        #expect(transcriptions.allSatisfy { $0.files["file"]?.filename == "audio.mp3" }, "the SDK's WAV was transcoded by ffmpeg")
        let translation = try #require(fake.requests(to: .translation).last?.form)
        #expect(translation.fields["prompt"] == "a tone" && translation.files["file"] != nil)

        let speech = fake.requests(to: .speech).compactMap(\.json)
        #expect(speech.map { $0["voice"] as? String } == ["alloy", "nova"])
        #expect(speech.first?["input"] as? String == "say this")
        #expect(speech.last?["response_format"] as? String == "flac" && speech.last?["speed"] as? Double == 1.25)
    }

    /// Every SDK call was billed to the key: 7 chat (2 through the chat model), 4 embeddings,
    /// 4 speech to text, 2 text to speech.
    static func checkBilled(_ platform: PlatformUnderTest, token: String, keyId: String, chatModelId: String) async throws {
        let usage = try await platform.request(.GET, "/ai/usage?apiKeyId=\(keyId)&pageSize=100", token: token)
        let records = try #require(usage.data["results"] as? [[String: Any]])
        let kinds = Dictionary(grouping: records) { $0["kind"] as? String ?? "" }.mapValues(\.count)
        #expect(kinds == ["chat": 7, "embeddings": 4, "stt": 4, "tts": 2], "\(kinds)")
        #expect(records.allSatisfy { $0["status"] as? Int == 200 })
        #expect(records.filter { $0["chatModelId"] as? String == chatModelId }.count == 2)
    }

    /// A second customer whose token budget the admin set to 0: its key, the key's id and its token.
    static func keyWithSpentQuota(_ platform: PlatformUnderTest) async throws -> (key: String, keyId: String, token: String) {
        let (token, _) = try await AIFlowTests.customer(platform, "sdk-broke")
        let (key, keyId) = try await OpenAICompatibleTests.apiKey(platform, token: token)
        let userId = try #require(try await platform.request(.GET, "/user/current", token: token).data["id"] as? String)
        let admin = try await platform.adminToken()
        #expect(try await platform.request(.PUT, "/ai/quota/\(userId)", json: #"{"tokenBudget":0}"#, token: admin).status == 200)
        return (key, keyId, token)
    }
}

extension PlatformUnderTest {
    /// What an SDK's `base_url` is set to.
    var baseURL: String { "http://127.0.0.1:\(port)/v1" }
}

/// One user service, one AI service against the fake provider, and two gateways sharing them, as
/// separate `aisaas` processes.
struct SeparateProcesses {
    let processes: ProcessSet
    let directory: TemporaryDirectory
    let gateways: [HTTPTestClient]

    /// Starts the fake provider and the processes, runs `body`, and stops them all, whatever happens.
    static func with(_ kind: TestDatabaseKind, _ body: (SeparateProcesses) async throws -> Void) async throws {
        let provider = try await FakeProvider.start()
        provider.requireAPIKey(AIFlowTests.providerKey)
        do {
            let topology = try await start(kind, provider: provider)
            defer { topology.stop() }
            try await body(topology)
        } catch {
            await provider.stop()
            throw error
        }
        await provider.stop()
    }

    private static func start(_ kind: TestDatabaseKind, provider: FakeProvider) async throws -> SeparateProcesses {
        let directory = try TemporaryDirectory()
        let (userPort, aiPort) = (try freePort(), try freePort())
        let gatewayPorts = [try freePort(), try freePort()]
        var environment = [
            "DATA_DIR": directory.path, "JWT_SECRET": PlatformUnderTest.jwtSecret,
            "SECRET_KEY_MASTER_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "BCRYPT_COST": "4",
            "USER_SERVICE_PORT": "\(userPort)", "USER_SERVICE_ADDRS": "127.0.0.1:\(userPort)",
            "AI_SERVICE_PORT": "\(aiPort)", "AI_SERVICE_ADDRS": "127.0.0.1:\(aiPort)",
            "AI_PROVIDERS": "openai", "AI_PROVIDER_OPENAI_BASE_URL": provider.baseURL,
            "AI_PROVIDER_OPENAI_API_KEY": AIFlowTests.providerKey, "AI_PROVIDER_OPENAI_CHAT_MODEL": "gpt-test",
            // Short, so that the other gateway's refusal is measured in well under the test's bound.
            "REVOCATION_POLL_MILLISECONDS": "200",
            "LOG_LEVEL": "notice",
        ]
        environment["USER_DATABASE_URL"] = try await kind.makeLocation(in: directory, name: "user").url
        environment["AI_DATABASE_URL"] = try await kind.makeLocation(in: directory, name: "ai").url

        let processes = ProcessSet(directory: directory.path)
        let topology = SeparateProcesses(processes: processes, directory: directory, gateways: gatewayPorts.map(HTTPTestClient.init))
        do {
            try await topology.launch(environment, servicePorts: [userPort, aiPort], gatewayPorts: gatewayPorts)
        } catch {
            topology.stop()
            throw error
        }
        return topology
    }

    private func launch(_ environment: [String: String], servicePorts: [Int], gatewayPorts: [Int]) async throws {
        let migrate = try processes.start("migrate", ["migrate"], environment: environment)
        migrate.waitUntilExit()
        guard migrate.terminationStatus == 0 else { throw TestFailure("migrate failed: \(processes.log("migrate"))") }
        _ = try processes.start("user", ["user-service"], environment: environment)
        _ = try processes.start("ai", ["ai-service"], environment: environment)
        try await waitUntilListening(servicePorts, processes)
        for (index, port) in gatewayPorts.enumerated() {
            _ = try processes.start("gateway-\(index)", ["gateway"], environment: environment.merging(["HTTP_PORT": "\(port)"]) { $1 })
        }
        try await waitUntil("gateways healthy; logs: \(processes.allLogs())") {
            for gateway in gateways {
                guard (try? await gateway.get("/health").status) == 200 else { return false }
            }
            return true
        }
    }

    func stop() {
        processes.killAll()
        directory.remove()
    }
}

/// Runs `openai_sdk_flows.py` with the Python of the virtual environment that scripts/test.sh
/// makes, and answers what it printed.
enum SDKScript {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("openai_sdk_flows.py")

    /// `OPENAI_SDK_PYTHON`, else where scripts/test.sh puts the virtual environment by default, so
    /// that a plain `swift test` after one run of the script finds it too.
    static var python: String {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["OPENAI_SDK_PYTHON"], !path.isEmpty { return path }
        let venv = environment["AISAAS_PYTHON_VENV"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory() + "/.cache/aisaas/openai-venv"
        return venv + "/bin/python"
    }

    /// The script's JSON: `results` per scenario, as the SDK returned them.
    struct Run: @unchecked Sendable {
        // JSONSerialization's values (Any); made and read within one test task.
        let results: [String: Any]

        func result(_ scenario: String) throws -> [String: Any] {
            try #require(results[scenario] as? [String: Any], "no result for \(scenario)")
        }

        /// The object at a dotted path such as `bad_key.chat`; empty when there is none.
        func value(at path: String) -> [String: Any] {
            path.split(separator: ".").reduce(results as Any?) { ($0 as? [String: Any])?[String($1)] } as? [String: Any] ?? [:]
        }
    }

    /// Runs the scenarios in order; throws, with the script's stderr, when any check failed.
    static func run(_ scenarios: [String], config: [String: any Sendable], timeout: Duration = .seconds(180)) async throws -> Run {
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw TestFailure("no Python with the openai package at \(python): run scripts/test.sh, which makes it and sets OPENAI_SDK_PYTHON")
        }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let configJSON = String(decoding: try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]), as: UTF8.self)
        let status = try await scratch.execute(python, [script.path, configJSON] + scenarios, timeout: timeout)
        let output = scratch.read("stdout"), errors = scratch.read("stderr")
        let printed = (try? JSONSerialization.jsonObject(with: Data(output.utf8))) as? [String: Any]
        let failures = printed?["failures"] as? [String: String] ?? [:]
        guard status == 0, failures.isEmpty, let results = printed?["results"] as? [String: Any] else {
            let named = failures.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "\n")
            throw TestFailure("the openai SDK scenarios failed (exit \(status)):\n\(named)\nstdout: \(output)\nstderr: \(errors)")
        }
        return Run(results: results)
    }

    /// A temporary folder for a child's output and the audio it uploads.
    struct Scratch {
        let directory: TemporaryDirectory

        init() throws { directory = try TemporaryDirectory() }

        func remove() { directory.remove() }

        func read(_ name: String) -> String {
            (try? String(contentsOfFile: directory.path + "/\(name)", encoding: .utf8)) ?? ""
        }

        /// One second of a tone as a WAV file, made by the real ffmpeg; answers its path.
        func toneWAV() throws -> String {
            let path = directory.path + "/tone.wav"
            try Data(try OpenAICompatibleTests.sineWAV()).write(to: URL(fileURLWithPath: path))
            return path
        }

        /// Runs `executable` with stdout and stderr in files of this folder, waiting without
        /// blocking a thread: the platform under test serves the child from this same process.
        /// A plain child that does not daemonize, so `Process` sees it exit.
        func execute(_ executable: String, _ arguments: [String], timeout: Duration) async throws -> Int32 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("OPENAI_") }
            environment["PYTHONDONTWRITEBYTECODE"] = "1"
            process.environment = environment
            process.standardOutput = try handle("stdout")
            process.standardError = try handle("stderr")
            let watchdog = Task {
                try await Task.sleep(for: timeout)
                if process.isRunning { process.terminate() }
            }
            defer { watchdog.cancel() }
            return try await withCheckedThrowingContinuation { continuation in
                process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
                do {
                    try process.run()
                } catch {
                    process.terminationHandler = nil
                    continuation.resume(throwing: error)
                }
            }
        }

        private func handle(_ name: String) throws -> FileHandle {
            let path = directory.path + "/\(name)"
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            return try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        }
    }
}
