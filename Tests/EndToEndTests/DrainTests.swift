import Foundation
import Testing
import TestSupport

/// SIGTERM on a replica while it serves: it reports NOT_SERVING, finishes what it has, and exits 0.
@Suite("draining on SIGTERM", .serialized)
struct DrainTests {
    @Test("an AI service replica finishes its calls and streams in flight, records what callers got, and exits 0", arguments: TestDatabaseKind.enabled)
    func aiServiceDrains(kind: TestDatabaseKind) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let provider = try await FakeProvider.start()
        defer { Task { await provider.stop() } }
        provider.setStreaming(FakeProvider.Streaming(chunks: 4, interval: .milliseconds(500)))
        let userPort = try freePort(), aiPorts = [try freePort(), try freePort()], gatewayPort = try freePort()
        var environment = [
            "DATA_DIR": directory.path, "JWT_SECRET": PlatformUnderTest.jwtSecret,
            "SECRET_KEY_MASTER_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "BCRYPT_COST": "4",
            "USER_SERVICE_PORT": "\(userPort)", "USER_SERVICE_ADDRS": "127.0.0.1:\(userPort)",
            "AI_SERVICE_ADDRS": aiPorts.map { "127.0.0.1:\($0)" }.joined(separator: ","), "HTTP_PORT": "\(gatewayPort)",
            "AI_PROVIDERS": "openai", "AI_PROVIDER_OPENAI_BASE_URL": provider.baseURL, "LOG_LEVEL": "info",
            "AI_RATE_LIMIT_PER_MINUTE": "0",
        ]
        environment["USER_DATABASE_URL"] = try await kind.makeLocation(in: directory, name: "user").url
        environment["AI_DATABASE_URL"] = try await kind.makeLocation(in: directory, name: "ai").url
        let processes = ProcessSet(directory: directory.path)
        defer { processes.killAll() }
        let migrate = try processes.start("migrate", ["migrate"], environment: environment)
        migrate.waitUntilExit()
        _ = try processes.start("user", ["user-service"], environment: environment)
        let replicas = try aiPorts.enumerated().map { index, port in
            try processes.start("ai-\(index)", ["ai-service"], environment: environment.merging(["AI_SERVICE_PORT": "\(port)"]) { $1 })
        }
        try await waitUntilListening([userPort] + aiPorts, processes)
        _ = try processes.start("gateway", ["gateway"], environment: environment)
        let client = HTTPTestClient(port: gatewayPort)
        try await waitUntil("healthy; logs: \(processes.allLogs())") { (try? await client.get("/health").status) == 200 }
        let registered = try await firstCall(processes) {
            try await client.send("POST", "/user/register", json: #"{"username":"drainer","password":"password123"}"#)
        }
        let device = SignedClient(
            port: gatewayPort, accessKey: try #require(registered.data["accessKey"] as? String),
            secretKey: try #require(registered.data["secretKey"] as? String)
        )
        let token = try #require(try await client.send("PUT", "/auth/login", json: #"{"username":"drainer","password":"password123"}"#).data["accessToken"] as? String)
        // Both replicas have a connection before the test begins.
        for index in 0..<4 { _ = try await device.json("/ai/invoke/chat_completion", #"{"question": "warm \#(index)"}"#) }
        provider.setBehavior(.delay(.milliseconds(1500)), for: .chat)

        let inFlight = Task {
            try await withThrowingTaskGroup(of: String.self) { group in
                for index in 0..<6 {
                    group.addTask { "\(try await device.json("/ai/invoke/chat_completion", #"{"question": "drain \#(index)"}"#).status)" }
                }
                for index in 0..<2 {
                    group.addTask {
                        let stream = try await device.stream("/ai/invoke/chat_completion", #"{"question": "stream \#(index) a b c d", "stream": true}"#)
                        return stream.status == 200 && stream.events.last == "data: [DONE]" ? "stream ok" : "stream \(stream.status) \(stream.events)"
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
        }
        // Every call in flight at the provider (held there 1.5 s, streams 2 s) before the signal.
        let reached = await provider.waitUntil(timeout: .seconds(20)) { _ in provider.requests(to: .chat).count >= 4 + 8 }
        #expect(reached, "the calls did not all reach the provider: \(provider.requests(to: .chat).count)")
        replicas[0].terminate()
        // New calls meanwhile go to the replica that stays.
        try await withThrowingTaskGroup(of: HTTPTestClient.Reply.self) { group in
            for index in 0..<3 {
                group.addTask { try await device.json("/ai/invoke/chat_completion", #"{"question": "during \#(index)"}"#) }
            }
            for try await reply in group { #expect(reply.status == 200, "during drain: \(reply.status) \(reply.message)") }
        }
        let outcomes = try await inFlight.value
        #expect(outcomes.filter { $0 == "200" }.count == 6, "\(outcomes); ai-0: \(processes.log("ai-0")); gateway: \(processes.log("gateway"))")
        #expect(outcomes.filter { $0 == "stream ok" }.count == 2, "\(outcomes); gateway: \(processes.log("gateway"))")
        replicas[0].waitUntilExit()
        #expect(replicas[0].terminationReason == .exit && replicas[0].terminationStatus == 0, "\(processes.log("ai-0"))")

        // What callers got is what the records say.
        let usage = try await client.send("GET", "/ai/usage?pageSize=100", token: token)
        let records = try #require(usage.data["results"] as? [[String: Any]])
        #expect(records.count == 4 + 8 + 3, "\(records.count)")
        #expect(records.allSatisfy { $0["status"] as? Int == 200 }, "\(records.map { "\($0["status"] ?? "-") \($0["error"] ?? "")" })")
    }

    @Test("aisaas all drains an HTTP call in flight on SIGTERM and exits 0; past SHUTDOWN_DRAIN_SECONDS it cuts a hung call short and still exits")
    func allInOneDrains() async throws {
        let provider = try await FakeProvider.start()
        defer { Task { await provider.stop() } }
        for (drain, behavior) in [("10", FakeProvider.Behavior.delay(.milliseconds(1500))), ("1", .hang)] {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            let port = try freePort()
            let processes = ProcessSet(directory: directory.path)
            defer { processes.killAll() }
            let platform = try processes.start("all", ["all"], environment: [
                "DATA_DIR": directory.path, "HTTP_PORT": "\(port)", "BCRYPT_COST": "4", "SHUTDOWN_DRAIN_SECONDS": drain,
                "AI_PROVIDERS": "openai", "AI_PROVIDER_OPENAI_BASE_URL": provider.baseURL,
            ])
            let client = HTTPTestClient(port: port)
            try await waitUntil("healthy: \(processes.log("all"))") { (try? await client.get("/health").status) == 200 }
            let registered = try await client.send("POST", "/user/register", json: #"{"username":"drainer","password":"password123"}"#)
            let device = SignedClient(
                port: port, accessKey: try #require(registered.data["accessKey"] as? String),
                secretKey: try #require(registered.data["secretKey"] as? String)
            )
            provider.setBehavior(behavior, for: .chat)
            let before = provider.requests(to: .chat).count
            let call = Task { try? await device.json("/ai/invoke/chat_completion", #"{"question": "in flight"}"#) }
            #expect(await provider.waitUntil(timeout: .seconds(20)) { _ in provider.requests(to: .chat).count > before })
            let stopped = ContinuousClock.now
            platform.terminate()
            let reply = await call.value
            platform.waitUntilExit()
            provider.setBehavior(.answer, for: .chat)
            if drain == "10" {
                #expect(reply?.status == 200, "\(reply?.status ?? 0) \(reply?.message ?? ""): \(processes.log("all"))")
                #expect(platform.terminationReason == .exit && platform.terminationStatus == 0, "\(processes.log("all"))")
            } else {
                // Cut short: the caller learns it, and the process does not linger.
                #expect(reply == nil || (reply?.status ?? 0) >= 500, "\(reply?.status ?? 0)")
                #expect(ContinuousClock.now - stopped < .seconds(15))
                #expect(platform.terminationReason == .exit && platform.terminationStatus == 0, "\(processes.log("all"))")
                #expect(processes.log("all").contains("did not drain within"))
            }
        }
    }
}
