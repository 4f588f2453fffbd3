import Foundation
import Glibc
import Platform
import Testing
import TestSupport

/// Dynamic settings applied while the real processes run: from etcd across replicas, and from a
/// watched YAML file.
@Suite("configuration center", .serialized)
struct ConfigReloadTests {
    static func appliedVersion(_ port: Int) async -> String? {
        let health = try? await HTTPTestClient(port: port).get("/health")
        return ((health?.data["configuration"] as? [String: Any])?["applied"] as? [String: Any])?["version"] as? String
    }

    static func refused(_ port: Int) async -> [String: Any]? {
        let health = try? await HTTPTestClient(port: port).get("/health")
        return (health?.data["configuration"] as? [String: Any])?["refused"] as? [String: Any]
    }

    static func runCLI(_ processes: ProcessSet, _ arguments: [String], _ environment: [String: String]) throws -> (status: Int32, output: String) {
        let name = "cli-\(UInt32.random(in: 0...UInt32.max))"
        let process = try processes.start(name, arguments, environment: environment)
        process.waitUntilExit()
        return (process.terminationStatus, processes.log(name))
    }

    @Test("a change in etcd reaches every replica without a restart; the CLI refuses an invalid one; one written around it is refused by the processes, which keep their settings")
    func etcdChangeAppliesEverywhere() async throws {
        let etcd = try EtcdServer()
        defer { etcd.remove() }
        try await etcd.start()
        let provider = try await FakeProvider.start()
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let userPort = try freePort()
        let aiPorts = [try freePort(), try freePort()]
        let gatewayPorts = [try freePort(), try freePort()]
        let metricsPort = try freePort()
        let environment = [
            "DATA_DIR": directory.path, "JWT_SECRET": PlatformUnderTest.jwtSecret,
            "SECRET_KEY_MASTER_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "BCRYPT_COST": "4",
            "DISCOVERY": "etcd", "ETCD_ENDPOINTS": etcd.endpoint, "ETCD_PREFIX": "/config-test",
            "LOG_LEVEL": "notice", "METRICS_PORT": "0",
        ]
        // The providers come from etcd, as the whole fleet's: the environment would win over it.
        try await EtcdClient(endpoints: [etcd.endpoint]).write([
            "/config-test/config/ai.providers": "openai", "/config-test/config/ai.provider.openai.base.url": provider.baseURL,
        ])
        let processes = ProcessSet(directory: directory.path)
        defer { processes.killAll() }
        let migrate = try processes.start("migrate", ["migrate"], environment: environment)
        migrate.waitUntilExit()
        _ = try processes.start("user", ["user-service"], environment: environment.merging(["USER_SERVICE_PORT": "\(userPort)"]) { $1 })
        for (index, port) in aiPorts.enumerated() {
            _ = try processes.start("ai-\(index)", ["ai-service"], environment: environment.merging(["AI_SERVICE_PORT": "\(port)"]) { $1 })
        }
        try await waitUntilListening([userPort] + aiPorts, processes)
        for (index, port) in gatewayPorts.enumerated() {
            let metrics = index == 0 ? "\(metricsPort)" : "0"
            _ = try processes.start("gateway-\(index)", ["gateway"], environment: environment.merging(["HTTP_PORT": "\(port)", "METRICS_PORT": metrics]) { $1 })
        }
        try await waitUntil("both gateways see the three instances; logs: \(processes.allLogs())", timeout: .seconds(30)) {
            for port in gatewayPorts {
                guard let health = try? await HTTPTestClient(port: port).get("/health"), health.status == 200,
                      (health.data["instances"] as? [Any])?.count == 3 else { return false }
            }
            return true
        }
        let startVersion = try #require(await Self.appliedVersion(gatewayPorts[0]))
        #expect(await Self.appliedVersion(gatewayPorts[1]) == startVersion, "the same settings give the same version everywhere")

        let registered = try await firstCall(processes) {
            try await HTTPTestClient(port: gatewayPorts[0]).send("POST", "/user/register", json: #"{"username":"fleet-owner","password":"password123"}"#)
        }
        let accessKey = try #require(registered.data["accessKey"] as? String)
        let secretKey = try #require(registered.data["secretKey"] as? String)
        let devices = gatewayPorts.map { SignedClient(port: $0, accessKey: accessKey, secretKey: secretKey) }
        for device in devices {
            #expect(try await device.json("/ai/invoke/chat_completion", #"{"question":"before"}"#).status == 200)
        }

        // A provider's base URL and key change: calls go to the new one, with the new key.
        let replacement = try await FakeProvider.start()
        replacement.setChatReply("answered by the replacement provider")
        replacement.requireAPIKey("sk-rotated")
        let moved = try Self.runCLI(processes, [
            "config", "set", "ai.provider.openai.base.url=\(replacement.baseURL)", "ai.provider.openai.api.key=sk-rotated",
        ], environment)
        #expect(moved.status == 0, "\(moved.output)")
        try await waitUntil("both AI replicas call the replacement", timeout: .seconds(15)) {
            for device in devices {
                for _ in 0..<2 {
                    let reply = try? await device.json("/ai/invoke/chat_completion", #"{"question":"which provider?"}"#)
                    guard let reply, reply.status == 200, String(decoding: reply.body, as: UTF8.self).contains("replacement provider") else { return false }
                }
            }
            return true
        }
        #expect(!(try Self.runCLI(processes, ["config", "get"], environment).output.contains("sk-rotated")), "secrets are not printed")
        let listed = try Self.runCLI(processes, ["config", "get", "--json"], environment).output
        #expect(!listed.contains("sk-rotated") && listed.contains("(set, not shown)"), "nor in JSON: \(listed)")
        // Nor when the key is spelled as its environment variable.
        for spelling in ["AI_PROVIDER_OPENAI_API_KEY", "ai.provider.openai.api_key"] {
            let one = try Self.runCLI(processes, ["config", "get", spelling, "--json"], environment).output
            #expect(!one.contains("sk-rotated") && one.contains("(set, not shown)"), "\(spelling): \(one)")
        }

        // One command changes the rate limit and the login throttle of the whole fleet.
        let set = try Self.runCLI(processes, ["config", "set", "ai.rate.limit.per.minute=3", "login.max.failures.per.username=1"], environment)
        #expect(set.status == 0, "\(set.output)")
        #expect(try Self.runCLI(processes, ["config", "get", "ai.rate.limit.per.minute"], environment).output.contains("3"))
        try await waitUntil("both gateways applied the change", timeout: .seconds(15)) {
            for port in gatewayPorts {
                guard let version = await Self.appliedVersion(port), version != startVersion else { return false }
            }
            return true
        }
        // Each gateway throttles logins by itself: one failure, then 429, on either.
        for (index, port) in gatewayPorts.enumerated() {
            let http = HTTPTestClient(port: port)
            let login = #"{"username":"fleet-owner-\#(index)","password":"wrong-password"}"#
            #expect(try await http.send("PUT", "/auth/login", json: login).status == 401)
            #expect(try await http.send("PUT", "/auth/login", json: login).status == 429, "gateway \(index) kept the old limit")
        }
        // Three calls a minute per key, counted across replicas, through either gateway: the two
        // made before the change and one more; the AI replicas have the new limit within seconds.
        var statuses: [Int] = []
        try await waitUntil("the AI replicas refuse the fourth call", timeout: .seconds(15)) {
            let status = (try? await devices[statuses.count % 2].json("/ai/invoke/chat_completion", #"{"question":"after"}"#).status) ?? 0
            statuses.append(status)
            return status == 429
        }
        // Until the replicas had the new limit, calls went through; none failed otherwise.
        #expect(statuses.dropLast().allSatisfy { $0 == 200 }, "\(statuses)")
        for index in 0..<4 {
            let refused = try await devices[index % 2].json("/ai/invoke/chat_completion", #"{"question":"refused"}"#)
            #expect(refused.status == 429 && refused.message.contains("at most 3 requests per minute"), "\(refused.status) \(refused.json)")
        }

        // The CLI checks a change before it writes it.
        let invalid = try Self.runCLI(processes, ["config", "set", "ai.rate.limit.per.minute=-5"], environment)
        #expect(invalid.status == 78 && invalid.output.contains("AI_RATE_LIMIT_PER_MINUTE"), "\(invalid.output)")
        // The sampler is applied by every process, traced or not: a bad one is refused here too.
        // Spelled as its environment variable, a key is the same setting, checked the same way.
        let invalidByName = try Self.runCLI(processes, ["config", "set", "AI_RATE_LIMIT_PER_MINUTE=abc"], environment)
        #expect(invalidByName.status == 78 && invalidByName.output.contains("AI_RATE_LIMIT_PER_MINUTE"), "\(invalidByName.output)")
        let badSampler = try Self.runCLI(processes, ["config", "set", "otel.traces.sampler=bogus"], environment)
        #expect(badSampler.status == 78 && badSampler.output.contains("OTEL_TRACES_SAMPLER"), "\(badSampler.output)")
        #expect(try Self.runCLI(processes, ["config", "get", "ai.rate.limit.per.minute"], environment).output.contains("3"))

        // Written around the CLI, an invalid change is refused whole by every process: the login
        // throttle in the same change does not apply either.
        let store = EtcdClient(endpoints: [etcd.endpoint])
        let applied = await Self.appliedVersion(gatewayPorts[0])
        try await store.write([
            "/config-test/config/login.max.failures.per.username": "1000",
            "/config-test/config/cors.allowed.origins": "https://app.example",
            "/config-test/config/otel.traces.sampler": "sometimes",
        ])
        try await waitUntil("both gateways refused the change", timeout: .seconds(15)) {
            for port in gatewayPorts {
                guard let refused = await Self.refused(port), let problems = refused["problems"] as? [String],
                      problems.contains(where: { $0.contains("OTEL_TRACES_SAMPLER") }) else { return false }
            }
            return true
        }
        #expect(await Self.appliedVersion(gatewayPorts[0]) == applied, "the running settings stay")
        let stillThrottled = try await HTTPTestClient(port: gatewayPorts[0]).send(
            "PUT", "/auth/login", json: #"{"username":"fleet-owner-0","password":"wrong-password"}"#
        )
        #expect(stillThrottled.status == 429, "the refused change's login limit must not apply")
        let exposition = String(decoding: try await HTTPTestClient(port: metricsPort).get("/metrics").body, as: UTF8.self)
        #expect(exposition.contains(#"aisaas_config_reloads_total{outcome="refused"} 1"#), "\(exposition)")
        #expect(exposition.contains(#"aisaas_config_version_info{state="applied",version="\#(applied ?? "")"} 1"#))
        #expect(exposition.contains(#"aisaas_config_version_info{state="refused""#))
        await provider.stop()
        await replacement.stop()
    }

    @Test("a watched YAML file: CORS origins, the access log and the log level change without a restart; a bad value and a file that stops parsing are refused; config validate checks a file")
    func fileChangeApplies() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = directory.path + "/settings.yaml"
        func write(_ yaml: String) throws {
            // Written whole then renamed, as a ConfigMap update is: the watcher never reads half a file.
            try Data(yaml.utf8).write(to: URL(fileURLWithPath: file + ".new"))
            guard rename(file + ".new", file) == 0 else { throw TestFailure("rename failed: \(errno)") }
        }
        try Data("access:\n  log: false\nlog:\n  level: info\n".utf8).write(to: URL(fileURLWithPath: file))
        let port = try freePort()
        let environment = [
            "DATA_DIR": directory.path, "JWT_SECRET": PlatformUnderTest.jwtSecret, "BCRYPT_COST": "4",
            "SECRET_KEY_MASTER_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            "HTTP_PORT": "\(port)", "METRICS_PORT": "0", "CONFIG_FILE": file,
        ]
        let processes = ProcessSet(directory: directory.path)
        defer { processes.killAll() }
        _ = try processes.start("all", ["all"], environment: environment)
        let http = HTTPTestClient(port: port)
        try await waitUntil("the platform answers; logs: \(processes.allLogs())", timeout: .seconds(30)) {
            (try? await http.get("/health").status) == 200
        }
        let origin = [("Origin", "https://console.example")]
        #expect(try await http.send("GET", "/health", headers: origin).headers["access-control-allow-origin"].isEmpty)
        // The access line of a request (written as its response ends) names its route template.
        func accessLines() -> Int { processes.log("all").components(separatedBy: "route=/openapi.json").count - 1 }
        let startVersion = try #require(await Self.appliedVersion(port))
        // At level info, only ACCESS_LOG=false keeps this request's line out.
        _ = try await http.get("/openapi.json")

        // The access log on, the level raised past info: still no line.
        try write("""
            config:
              version: "2026-12-04.1"
            access:
              log: true
            log:
              level: notice
            """)
        try await waitUntil("the access log switched on", timeout: .seconds(15)) { await Self.appliedVersion(port) == "2026-12-04.1" }
        #expect(accessLines() == 0, "a request served with ACCESS_LOG off was logged")
        _ = try await http.get("/openapi.json")

        try write("""
            config:
              version: "2026-12-04.2"
            access:
              log: true
            log:
              level: info
            cors:
              allowed:
                origins: "https://console.example"
            """)
        try await waitUntil("the file's new version applied", timeout: .seconds(15)) { await Self.appliedVersion(port) == "2026-12-04.2" }
        #expect(accessLines() == 0, "a request served at level notice was logged at info")
        #expect(try await http.send("GET", "/health", headers: origin).headers["access-control-allow-origin"] == ["https://console.example"])
        _ = try await http.get("/openapi.json?after-change")
        try await waitUntil("the access line", timeout: .seconds(5)) { accessLines() == 1 }

        // A value out of range: refused whole, the CORS change in the same version included.
        try write("""
            config:
              version: "2026-12-04.3"
            cors:
              allowed:
                origins: "https://other.example"
            login:
              max:
                failures:
                  per:
                    username: 0
            """)
        try await waitUntil("the bad version refused", timeout: .seconds(15)) { await Self.refused(port)?["version"] as? String == "2026-12-04.3" }
        let problems = await Self.refused(port)?["problems"] as? [String] ?? []
        #expect(problems.contains { $0.contains("LOGIN_MAX_FAILURES_PER_USERNAME") }, "\(problems)")
        #expect(await Self.appliedVersion(port) == "2026-12-04.2")
        #expect(try await http.send("GET", "/health", headers: origin).headers["access-control-allow-origin"] == ["https://console.example"])
        #expect(processes.log("all").contains("settings change refused"))

        // A file that no longer parses keeps the last good settings and is reported as refused.
        try write("cors: [unclosed\n")
        try await waitUntil("the unparsable file refused", timeout: .seconds(15)) {
            (await Self.refused(port)?["version"] as? String)?.hasPrefix("file:") == true
        }
        #expect(await Self.appliedVersion(port) == "2026-12-04.2")
        #expect(startVersion != "2026-12-04.2")

        // `config validate` checks a file without applying it.
        let good = directory.path + "/good.json", bad = directory.path + "/bad.yaml"
        try Data(#"{"ai": {"rate": {"limit": {"per": {"minute": 30}}}}}"#.utf8).write(to: URL(fileURLWithPath: good))
        try Data("ai:\n  prices: '{not json'\n".utf8).write(to: URL(fileURLWithPath: bad))
        let valid = try Self.runCLI(processes, ["config", "validate", good], [:])
        #expect(valid.status == 0 && valid.output.contains("valid"), "\(valid.output)")
        let invalid = try Self.runCLI(processes, ["config", "validate", bad], [:])
        #expect(invalid.status == 78 && invalid.output.contains("AI_PRICES"), "\(invalid.output)")
        let unparsable = try Self.runCLI(processes, ["config", "validate", file], [:])
        #expect(unparsable.status == 78 && unparsable.output.contains("does not parse"), "\(unparsable.output)")
    }
}
