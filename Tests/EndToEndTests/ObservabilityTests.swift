import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import Testing
import TestSupport

/// What an operator sees: a real Prometheus scraping the platform, and the spans of one request
/// arriving at an OTLP receiver as one trace across every hop.
@Suite("observability", .serialized)
struct ObservabilityTests {
    static func traceparent() -> (header: String, traceID: String, parentID: String) {
        let hex = { (count: Int) in (0..<count).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined() }
        let traceID = hex(16), parentID = hex(8)
        return ("00-\(traceID)-\(parentID)-01", traceID, parentID)
    }

    static func chatModel(_ platform: PlatformUnderTest, token: String) async throws -> String {
        let created = try await platform.request(.POST, "/ai/chat/model", json: #"{"name":"Observed","questionTpl":"Q: %question%"}"#, token: token)
        return try #require(created.data["id"] as? String)
    }

    @Test("a real Prometheus scrapes the platform and its series count the requests made; no secret is in any label")
    func prometheusScrapes() async throws {
        let prometheus = try #require(
            ["/usr/bin/prometheus", "/usr/local/bin/prometheus"].first { FileManager.default.isExecutableFile(atPath: $0) },
            "Debian's prometheus package is needed (scripts/test.sh installs it)"
        )
        let metricsPort = try freePort()
        try await AIFlowTests.withPlatform(.sqlite, settings: ["METRICS_PORT": "\(metricsPort)"]) { platform, _ in
            let (token, client) = try await AIFlowTests.customer(platform, "watched-user")
            for _ in 0..<5 { #expect(try await platform.request(.GET, "/user/current", token: token).status == 200) }
            for _ in 0..<3 { #expect(try await platform.request(.GET, "/user/current").status == 401) }
            let id = try await Self.chatModel(platform, token: token)
            for _ in 0..<2 {
                let reply = try await client.json("/ai/invoke/chat_completion", #"{"chatModelId":"\#(id)","question":"hello"}"#)
                #expect(reply.status == 200, "\(reply.message)")
            }

            let exposition = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(metricsPort)/metrics"), timeout: .seconds(10))
            #expect(exposition.status.code == 200)
            let text = String(buffer: try await exposition.body.collect(upTo: 8 << 20))
            for family in ["aisaas_build_info", "process_resident_memory_bytes", "process_open_fds", "rpc_server_duration_seconds_bucket", "db_client_operation_duration_seconds_bucket", "gen_ai_client_operation_duration_seconds_bucket", "db_client_connection_count", "db_client_connection_pending_requests"] {
                #expect(text.contains(family), "\(family) missing from /metrics")
            }
            // The four /user/current after the first found the user in the user service's cache.
            let hits = text.split(separator: "\n").first { $0.hasPrefix(#"aisaas_db_cache_lookups_total{component="user-service",cache="users_by_id",result="hit"} "#) }
            #expect((hits?.split(separator: " ").last.flatMap { Double($0) } ?? 0) >= 4, "\(hits ?? "no cache hits counted")")
            for secret in ["watched-user", token, client.accessKey, client.secretKey, AIFlowTests.providerKey] {
                #expect(!text.contains(secret), "a secret or user name is in /metrics")
            }

            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            let webPort = try freePort()
            try """
                global:
                  scrape_interval: 1s
                scrape_configs:
                  - job_name: aisaas
                    static_configs:
                      - targets: ["127.0.0.1:\(metricsPort)"]
                """.write(toFile: directory.path + "/prometheus.yml", atomically: true, encoding: .utf8)
            let server = Process()
            server.executableURL = URL(fileURLWithPath: prometheus)
            server.arguments = [
                "--config.file=\(directory.path)/prometheus.yml", "--storage.tsdb.path=\(directory.path)/data",
                "--web.listen-address=127.0.0.1:\(webPort)", "--log.level=error",
            ]
            let log = directory.path + "/prometheus.log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            server.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            server.standardError = server.standardOutput
            try server.run()
            defer { server.terminate() }

            func query(_ expression: String) async -> Double? {
                var allowed = CharacterSet.urlQueryAllowed
                allowed.remove(charactersIn: "+&=#")
                let url = "http://127.0.0.1:\(webPort)/api/v1/query?query=" + (expression.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")
                guard let response = try? await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(5)),
                      let body = try? await response.body.collect(upTo: 1 << 20),
                      let json = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any],
                      let result = (json["data"] as? [String: Any])?["result"] as? [[String: Any]],
                      let value = (result.first?["value"] as? [Any])?.last as? String else { return nil }
                return Double(value)
            }
            let expectations: [(String, (Double) -> Bool)] = [
                (#"sum(http_server_requests_total{component="gateway",route="/user/current",status="200"})"#, { $0 == 5 }),
                (#"sum(http_server_requests_total{route="/user/current",status="401"})"#, { $0 == 3 }),
                (#"sum(http_server_request_duration_seconds_count{route="/ai/invoke/chat_completion",status_class="2xx"})"#, { $0 == 2 }),
                (#"sum(aisaas_ai_requests_total{provider="openai",model="gpt-test",kind="chat",outcome="ok"})"#, { $0 == 2 }),
                (#"sum(aisaas_ai_tokens_total{type="input"})"#, { $0 > 0 }),
                (#"sum(aisaas_ai_cost_total)"#, { $0 > 0 }),
                (#"sum(rpc_client_calls_total{component="gateway",instance_address="in-process"})"#, { $0 >= 10 }),
                (#"sum(rpc_server_calls_total{component="user-service",rpc_grpc_status_code="ok"})"#, { $0 > 0 }),
                (#"sum(db_client_operation_duration_seconds_count{component="ai-service"})"#, { $0 > 0 }),
                // The user service's Fluent model writes (registration's INSERT) are measured too.
                (#"sum(db_client_operation_duration_seconds_count{component="user-service",db_operation_name="INSERT",db_collection_name="users"})"#, { $0 >= 1 }),
                (#"sum(aisaas_db_write_batch_size_sum{component="ai-service",writer="usage_ledger"})"#, { $0 == 2 }),
                (#"count(aisaas_service_instance_serving == 1)"#, { $0 == 2 }),
                (#"up{job="aisaas"}"#, { $0 == 1 }),
                (#"process_resident_memory_bytes"#, { $0 > 1_000_000 }),
            ]
            for (expression, holds) in expectations {
                var last: Double?
                let deadline = ContinuousClock.now + .seconds(60)
                while ContinuousClock.now < deadline {
                    last = await query(expression)
                    if let last, holds(last) { break }
                    try await Task.sleep(for: .milliseconds(300))
                }
                #expect(last.map(holds) == true, "\(expression) = \(last.map { "\($0)" } ?? "no value"); prometheus log: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            }
        }
    }

    @Test("one signed completion with a client traceparent is one trace: gateway → user service, gateway → AI service → provider")
    func traceInOneProcess() async throws {
        let receiver = try await OTLPTraceReceiver.start()
        defer { Task { await receiver.stop() } }
        try await AIFlowTests.withPlatform(.sqlite, settings: [
            "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_BSP_SCHEDULE_DELAY": "100",
        ]) { platform, provider in
            let (token, client) = try await AIFlowTests.customer(platform, "traced-user")
            let id = try await Self.chatModel(platform, token: token)
            let trace = Self.traceparent()
            let reply = try await client.send("POST", "/ai/invoke/chat_completion", body: Array(#"{"chatModelId":"\#(id)","question":"hi"}"#.utf8)) {
                $0.append(("traceparent", trace.header))
            }
            #expect(reply.status == 200, "\(reply.message)")
            #expect(reply.headers.first(name: "traceparent")?.contains(trace.traceID) == true, "the answer names the trace")
            let sent = try #require(provider.requests(to: .chat).last?.header("traceparent"))
            try await Self.checkTrace(receiver, trace: trace, providerTraceparent: sent)
        }
    }

    @Test("OTLP over gRPC; with OTEL_GENAI_CAPTURE_CONTENT the GenAI spans carry prompt and answer: signed and /v1, plain and streamed")
    func capturedContentOverGRPC() async throws {
        let receiver = try await OTLPTraceReceiver.startGRPC()
        defer { Task { await receiver.stop() } }
        try await AIFlowTests.withPlatform(.sqlite, settings: [
            "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_GENAI_CAPTURE_CONTENT": "true",
        ]) { platform, _ in
            let (token, client) = try await AIFlowTests.customer(platform, "captured-user")
            let id = try await Self.chatModel(platform, token: token)
            let (key, _) = try await OpenAICompatibleTests.apiKey(platform, token: token)
            let signed = try await client.json("/ai/invoke/chat_completion", #"{"chatModelId":"\#(id)","question":"alpha"}"#)
            #expect(signed.status == 200, "\(signed.message)")
            let signedStream = try await client.stream("/ai/invoke/chat_completion", #"{"question":"bravo","stream":true}"#)
            #expect(signedStream.status == 200)
            let plain = try await platform.request(.POST, "/v1/chat/completions", json: #"{"model":"gpt-test","messages":[{"role":"user","content":"charlie"}]}"#, token: key)
            #expect(plain.status == 200)
            let streamed = try await platform.request(
                .POST, "/v1/chat/completions",
                json: #"{"model":"gpt-test","stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"delta"}]}]}"#, token: key
            )
            #expect(streamed.status == 200)

            let words = ["alpha", "bravo", "charlie", "delta"]
            let spans = try await receiver.waitForSpans { spans in
                words.allSatisfy { word in spans.contains { $0.attributes["gen_ai.output.messages"]?.contains(word) == true } }
            }
            for word in words {
                let span = try #require(spans.first { $0.attributes["gen_ai.input.messages"]?.contains(word) == true }, "no GenAI span for \(word)")
                #expect(span.serviceName == "ai-service" && span.kind == 3 && span.name == "chat gpt-test")
                let input = try #require(span.attributes["gen_ai.input.messages"].flatMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [[String: Any]] })
                let last = try #require(input.last)
                #expect(last["role"] as? String == "user")
                let parts = try #require(last["parts"] as? [[String: Any]])
                #expect(parts.first?["type"] as? String == "text")
                #expect((parts.first?["content"] as? String)?.contains(word) == true)
                let output = try #require(span.attributes["gen_ai.output.messages"].flatMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [[String: Any]] })
                #expect(output.first?["role"] as? String == "assistant")
                let answer = (output.first?["parts"] as? [[String: Any]])?.first?["content"] as? String
                #expect(answer?.hasPrefix("echo: ") == true && answer?.contains(word) == true, "the answer: \(answer ?? "none")")
                #expect(output.first?["finish_reason"] as? String == "stop")
            }
            // The chat model's template is part of what was sent: the captured prompt is the provider's.
            #expect(spans.contains { $0.attributes["gen_ai.input.messages"]?.contains("Q: alpha") == true })
        }
    }

    /// The spans of `trace` form one tree under the client's span, reaching every component and
    /// the provider's call.
    static func checkTrace(
        _ receiver: OTLPTraceReceiver, trace: (header: String, traceID: String, parentID: String), providerTraceparent: String
    ) async throws {
        // Each process exports in batches of its own: a span that ended last (a server span ends
        // after its answer is written) may come a batch later than its children. Waited for until
        // the tree is whole, or the wait fails.
        let spans = try await receiver.waitForSpans { spans in
            let mine = spans.filter { $0.traceID == trace.traceID }
            let ids = Set(mine.map(\.spanID))
            return mine.contains { $0.serviceName == "gateway" && $0.kind == 2 }
                && mine.contains { $0.serviceName == "ai-service" && $0.attributes["gen_ai.request.model"] != nil }
                && mine.contains { $0.serviceName == "ai-service" && $0.kind == 2 }
                && mine.contains { $0.serviceName == "user-service" && $0.kind == 2 }
                && mine.allSatisfy { span in span.parentSpanID.map { ids.contains($0) || $0 == trace.parentID } ?? false }
        }.filter { $0.traceID == trace.traceID }
        let byID = Dictionary(spans.map { ($0.spanID, $0) }) { first, _ in first }
        let broken = spans.filter { span in span.parentSpanID.map { byID[$0] == nil && $0 != trace.parentID } ?? true }
        #expect(broken.isEmpty, "spans whose parent is missing: \(broken); all: \(spans)")
        let root = try #require(spans.first { $0.serviceName == "gateway" && $0.kind == 2 })
        #expect(root.parentSpanID == trace.parentID, "the gateway's span is a child of the client's")
        #expect(root.attributes["http.route"] == "/ai/invoke/chat_completion")
        #expect(root.attributes["http.response.status_code"] == "200")
        #expect(root.name == "POST /ai/invoke/chat_completion")

        func ancestors(_ span: OTLPTraceReceiver.ReceivedSpan) -> [OTLPTraceReceiver.ReceivedSpan] {
            var chain: [OTLPTraceReceiver.ReceivedSpan] = []
            var current = span
            while let parent = current.parentSpanID.flatMap({ byID[$0] }), chain.count < 50 {
                chain.append(parent)
                current = parent
            }
            return chain
        }
        let providerCall = try #require(spans.first { $0.serviceName == "ai-service" && $0.kind == 3 && $0.attributes["gen_ai.request.model"] == "gpt-test" })
        #expect(providerCall.name == "chat gpt-test")
        #expect(providerCall.attributes["gen_ai.operation.name"] == "chat")
        #expect(Int(providerCall.attributes["gen_ai.usage.input_tokens"] ?? "") ?? 0 > 0)
        #expect(providerTraceparent.hasPrefix("00-\(trace.traceID)-\(providerCall.spanID)-"), "the provider's request is a child of the GenAI span")
        let upFromProvider = ancestors(providerCall)
        #expect(upFromProvider.contains { $0.serviceName == "ai-service" && $0.kind == 2 }, "under the AI service's gRPC server span")
        #expect(upFromProvider.contains { $0.serviceName == "gateway" && $0.kind == 3 && $0.name.contains("ai.v1") }, "under the gateway's gRPC client span")
        #expect(upFromProvider.last?.spanID == root.spanID)

        let userServer = try #require(spans.first { $0.serviceName == "user-service" && $0.kind == 2 })
        let upFromUsers = ancestors(userServer)
        #expect(upFromUsers.contains { $0.serviceName == "gateway" && $0.name == "cc-auth-v1 verify" })
        #expect(upFromUsers.last?.spanID == root.spanID)
        #expect(spans.contains { $0.attributes["db.system.name"] != nil && $0.kind == 3 }, "database spans are in the trace")
        #expect(!spans.contains { $0.attributes.values.contains { $0.contains("Q: hi") } }, "no prompt text without OTEL_GENAI_CAPTURE_CONTENT")
    }

    @Test("aisaas all as a process: with OTEL_SERVICE_NAME and OTEL_TRACES_SAMPLER set, each component keeps its own name, the namespace is the operator's, and a trace is sampled once")
    func allInOneNamesItsComponents() async throws {
        let receiver = try await OTLPTraceReceiver.start()
        defer { Task { await receiver.stop() } }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let processes = ProcessSet(directory: directory.path)
        defer { processes.killAll() }
        let (_, http) = try await processes.startHealthyAll(environment: [
            "DATA_DIR": directory.path, "BCRYPT_COST": "4", "METRICS_PORT": "0",
            "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_SERVICE_NAME": "shop",
            // Were swift-otel to apply this over the platform's sampler too, it would decide again
            // from other bits of the trace ID, and keep a quarter of what the platform keeps.
            "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25",
        ])
        let registered = try await firstCall(processes) {
            try await http.send("POST", "/user/register", json: #"{"username":"named-components","password":"password123"}"#)
        }
        #expect(registered.status == 200, "\(registered.message)")
        let login = try await http.send("PUT", "/auth/login", json: #"{"username":"named-components","password":"password123"}"#)
        let token = try #require(login.data["accessToken"] as? String, "\(login.message)")
        // `traceidratio` ignores the client's decision: of 200 traces sent sampled, about 50 are
        // kept, each whole (the user service keeps what the gateway decided).
        var sent: [String] = []
        for _ in 0..<200 {
            let trace = Self.traceparent()
            sent.append(trace.traceID)
            let reply = try await http.send("GET", "/user/current", token: token, headers: [("traceparent", trace.header)])
            #expect(reply.status == 200)
        }
        let mine = Set(sent)
        func whole() -> (kept: Set<String>, partial: Set<String>) {
            let spans = receiver.spans.filter { mine.contains($0.traceID) }
            let kept = Set(spans.map(\.traceID))
            let partial = kept.filter { trace in
                !Set(spans.filter { $0.traceID == trace }.map(\.serviceName)).isSuperset(of: ["gateway", "user-service"])
            }
            return (kept, partial)
        }
        // 25% of 200 is 50 (standard deviation ~6); sampled twice, about 12.
        try await waitUntil("traces kept whole, from gateway and user service: \(whole()); logs: \(processes.allLogs())", timeout: .seconds(20)) {
            let (kept, partial) = whole()
            return kept.count >= 25 && partial.isEmpty
        }
        // Let the last exports arrive, then count.
        try await Task.sleep(for: .seconds(1))
        try await waitUntil("every trace kept whole: \(whole().partial)", timeout: .seconds(10)) { whole().partial.isEmpty }
        let spans = receiver.spans.filter { mine.contains($0.traceID) }
        #expect(!spans.contains { $0.serviceName == "shop" }, "OTEL_SERVICE_NAME named a component")
        #expect(spans.allSatisfy { $0.resource["service.namespace"] == "shop" }, "\(Set(spans.map(\.resource)))")
        let kept = whole().kept.count
        #expect(kept <= 90, "\(kept) of 200 traces kept")
    }

    @Test("separate processes: the same trace across processes, and JSON log lines with the request and trace ids")
    func traceAcrossProcesses() async throws {
        let receiver = try await OTLPTraceReceiver.start()
        defer { Task { await receiver.stop() } }
        let provider = try await FakeProvider.start()
        defer { Task { await provider.stop() } }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (userPort, aiPort, gatewayPort) = (try freePort(), try freePort(), try freePort())
        let environment = [
            "DATA_DIR": directory.path, "JWT_SECRET": PlatformUnderTest.jwtSecret,
            "SECRET_KEY_MASTER_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "BCRYPT_COST": "4",
            "USER_SERVICE_PORT": "\(userPort)", "AI_SERVICE_PORT": "\(aiPort)", "HTTP_PORT": "\(gatewayPort)",
            "USER_SERVICE_ADDRS": "127.0.0.1:\(userPort)", "AI_SERVICE_ADDRS": "127.0.0.1:\(aiPort)",
            "AI_PROVIDERS": "openai", "AI_PROVIDER_OPENAI_BASE_URL": provider.baseURL, "AI_PROVIDER_OPENAI_API_KEY": AIFlowTests.providerKey,
            "AI_PROVIDER_OPENAI_CHAT_MODEL": "gpt-test",
            "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_BSP_SCHEDULE_DELAY": "100",
            "LOG_FORMAT": "json", "LOG_LEVEL": "debug", "ACCESS_LOG": "true",
            "ADMIN_USERNAME": PlatformUnderTest.adminUsername, "ADMIN_PASSWORD": PlatformUnderTest.adminPassword,
        ]
        let processes = ProcessSet(directory: directory.path)
        defer { processes.killAll() }
        let migrate = try processes.start("migrate", ["migrate"], environment: environment)
        migrate.waitUntilExit()
        _ = try processes.start("user-service", ["user-service"], environment: environment)
        _ = try processes.start("ai-service", ["ai-service"], environment: environment)
        try await waitUntilListening([userPort, aiPort], processes)
        let gateway = try processes.start("gateway", ["gateway"], environment: environment)
        let http = HTTPTestClient(port: gatewayPort)
        try await waitUntil("gateway healthy; logs: \(processes.allLogs())") { (try? await http.get("/health").status) == 200 }

        let registered = try await firstCall(processes) {
            try await http.send("POST", "/user/register", json: #"{"username":"process-traced","password":"password123"}"#)
        }
        let accessKey = try #require(registered.data["accessKey"] as? String)
        let secretKey = try #require(registered.data["secretKey"] as? String)
        let login = try await http.send("PUT", "/auth/login", json: #"{"username":"process-traced","password":"password123"}"#)
        let token = try #require(login.data["accessToken"] as? String)
        let created = try await http.send("POST", "/ai/chat/model", json: #"{"name":"Observed"}"#, token: token)
        let id = try #require(created.data["id"] as? String)

        let trace = Self.traceparent()
        let reply = try await SignedClient(port: gatewayPort, accessKey: accessKey, secretKey: secretKey).send(
            "POST", "/ai/invoke/chat_completion", body: Array(#"{"chatModelId":"\#(id)","question":"hi"}"#.utf8)
        ) { $0.append(("traceparent", trace.header)) }
        #expect(reply.status == 200, "\(reply.message); logs: \(processes.allLogs())")
        let sent = try #require(provider.requests(to: .chat).last?.header("traceparent"))
        try await Self.checkTrace(receiver, trace: trace, providerTraceparent: sent)
        let requestId = try #require(reply.headers.first(name: "x-request-id"))

        // The other flows that handle secrets, so that none of them logs one (at debug level).
        let apiKeyReply = try await http.send("POST", "/user/api_keys", json: #"{"name":"logged-app"}"#, token: token)
        let apiKey = try #require(apiKeyReply.data["key"] as? String, "\(apiKeyReply.message)")
        let v1 = try await http.send("POST", "/v1/chat/completions", json: #"{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}"#, token: apiKey)
        #expect(v1.status == 200)
        #expect(try await http.send("GET", "/v1/models", token: apiKey).status == 200)
        #expect(try await http.send("GET", "/v1/models", token: apiKey + "x").status == 401)
        let newKeys = try await http.send("PATCH", "/user/update_keys", token: token)
        let newSecretKey = try #require(newKeys.data["secretKey"] as? String)
        let changed = try await http.send("PATCH", "/user/update", json: #"{"password":"changed-pass-77"}"#, token: token)
        #expect(changed.status == 200, "\(changed.message)")
        let newToken = try #require(changed.data["accessToken"] as? String)
        #expect(try await http.send("PUT", "/auth/login", json: #"{"username":"process-traced","password":"wrong-guess-55"}"#).status == 401)
        let adminLogin = try await http.send("PUT", "/auth/login", json: #"{"username":"\#(PlatformUnderTest.adminUsername)","password":"\#(PlatformUnderTest.adminPassword)"}"#)
        let adminToken = try #require(adminLogin.data["accessToken"] as? String)
        #expect(try await http.send("GET", "/user?current=1&pageSize=10", token: adminToken).status == 200)
        let badSignature = try await SignedClient(port: gatewayPort, accessKey: accessKey, secretKey: secretKey).send(
            "POST", "/ai/invoke/chat_completion", body: Array(#"{"chatModelId":"\#(id)","question":"hi"}"#.utf8)
        )
        #expect(badSignature.status == 403, "the old access key is no one's any more")
        #expect(try await http.send("DELETE", "/auth/logout", token: newToken).status == 200)

        gateway.terminate()
        gateway.waitUntilExit()
        var objects: [[String: String]] = []
        for line in processes.log("gateway").split(separator: "\n") {
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String]
            #expect(object != nil, "not a JSON object: \(line)")
            if let object { objects.append(object) }
        }
        let access = try #require(objects.first { $0["message"] == "access" && $0["request_id"] == requestId }, "no access line in \(objects)")
        #expect(access["route"] == "/ai/invoke/chat_completion" && access["status"] == "200" && access["method"] == "POST")
        #expect(access["trace_id"] == trace.traceID, "the access line carries the trace id")
        #expect(Double(access["duration_ms"] ?? "") != nil && Int(access["bytes"] ?? "") ?? 0 > 0)
        let logs = processes.allLogs()
        #expect(logs.contains("\"level\":\"debug\""), "the run logged at debug level")
        let secrets = [
            secretKey, newSecretKey, token, newToken, adminToken, apiKey, "password123", "changed-pass-77", "wrong-guess-55",
            PlatformUnderTest.adminPassword, AIFlowTests.providerKey, PlatformUnderTest.jwtSecret, "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        ]
        for secret in secrets {
            #expect(!logs.contains(secret), "a secret reached the logs: \(secret.prefix(6))…")
        }
    }
}
