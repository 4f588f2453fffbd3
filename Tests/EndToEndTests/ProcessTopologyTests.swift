import AKSKSigning
import Foundation
import Glibc
import TestSupport
import Testing

/// The real `aisaas` processes, as production runs them: replicated user services behind two
/// gateways, talking over loopback sockets.
@Suite("separate processes", .serialized)
struct ProcessTopologyTests {
    @Test("gateways balance over user service replicas, share revocations, survive an instance's death and stop cleanly", arguments: TestDatabaseKind.enabled)
    func replicatedTopology(kind: TestDatabaseKind) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let userPorts = [try freePort(), try freePort()]
        let gatewayPorts = [try freePort(), try freePort()]
        let aiPort = try freePort()
        var environment = [
            "DATA_DIR": directory.path,
            "JWT_SECRET": PlatformUnderTest.jwtSecret,
            "SECRET_KEY_MASTER_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            "BCRYPT_COST": "4",
            "ADMIN_USERNAME": PlatformUnderTest.adminUsername,
            "ADMIN_PASSWORD": PlatformUnderTest.adminPassword,
            "USER_SERVICE_ADDRS": userPorts.map { "127.0.0.1:\($0)" }.joined(separator: ","),
            "AI_SERVICE_ADDRS": "127.0.0.1:\(aiPort)",
            "AI_SERVICE_PORT": "\(aiPort)",
            "REVOCATION_POLL_MILLISECONDS": "500",
            "LOG_LEVEL": "notice",
        ]
        environment["USER_DATABASE_URL"] = try await kind.makeLocation(in: directory, name: "user").url
        environment["AI_DATABASE_URL"] = try await kind.makeLocation(in: directory, name: "ai").url

        let processes = ProcessSet(directory: directory.path)
        defer { processes.killAll() }
        let migrate = try processes.start("migrate", ["migrate"], environment: environment)
        migrate.waitUntilExit()
        #expect(migrate.terminationStatus == 0, "migrate failed: \(processes.log("migrate"))")

        let users = try userPorts.enumerated().map { index, port in
            try processes.start("user-\(index)", ["user-service"], environment: environment.merging(["USER_SERVICE_PORT": "\(port)"]) { $1 })
        }
        _ = try processes.start("ai", ["ai-service"], environment: environment)
        try await waitUntilListening(userPorts + [aiPort], processes)
        let gateways = try gatewayPorts.enumerated().map { index, port in
            try processes.start("gateway-\(index)", ["gateway"], environment: environment.merging(["HTTP_PORT": "\(port)"]) { $1 })
        }
        let clientA = HTTPTestClient(port: gatewayPorts[0])
        let clientB = HTTPTestClient(port: gatewayPorts[1])
        try await waitUntil("gateways healthy; logs: \(processes.allLogs())") {
            let a = try? await clientA.get("/health").status
            let b = try? await clientB.get("/health").status
            return a == 200 && b == 200
        }

        // One account, used through both gateways.
        let aliceRegistered = try await firstCall(processes) {
            try await clientA.send("POST", "/user/register", json: #"{"username":"alice","password":"password123"}"#)
        }
        #expect(aliceRegistered.status == 200, "\(aliceRegistered.status) \(String(decoding: aliceRegistered.body, as: UTF8.self)); logs: \(processes.allLogs())")
        let login = try await clientA.send("PUT", "/auth/login", json: #"{"username":"alice","password":"password123"}"#)
        let token = try #require(login.data["accessToken"] as? String)
        #expect(try await clientB.get("/user/current", token: token).status == 200)

        // Logout on A: refused by A at once and by B within 5 seconds.
        #expect(try await clientA.send("DELETE", "/auth/logout", token: token).status == 200)
        #expect(try await clientA.get("/user/current", token: token).status == 401)
        let loggedOut = ContinuousClock.now
        try await waitUntil("gateway B refuses the revoked token", timeout: .seconds(5)) {
            (try? await clientB.get("/user/current", token: token).status) == 401
        }
        #expect(ContinuousClock.now - loggedOut < .seconds(5))

        // One user service instance dies: calls keep working through the other; health names it.
        let fresh = try #require(try await clientA.send("PUT", "/auth/login", json: #"{"username":"alice","password":"password123"}"#).data["accessToken"] as? String)
        users[0].terminate()
        users[0].waitUntilExit()
        for _ in 0..<10 {
            #expect(try await clientA.get("/user/current", token: fresh).status == 200)
        }
        let health = try await clientA.get("/health")
        #expect(health.status == 503)
        #expect(health.message.contains("127.0.0.1:\(userPorts[0])"))
        #expect(!health.message.contains("127.0.0.1:\(userPorts[1])"))

        // With no user service left, tokens cannot be checked against revocations: fail closed.
        users[1].terminate()
        users[1].waitUntilExit()
        try await waitUntil("gateway B answers 503 without a user service", timeout: .seconds(15)) {
            (try? await clientB.get("/user/current", token: fresh).status) == 503
        }

        // SIGTERM drains and exits 0.
        gateways[0].terminate()
        gateways[0].waitUntilExit()
        #expect(gateways[0].terminationReason == .exit && gateways[0].terminationStatus == 0)
    }

    /// An admin demoted through gateway A changes their password through gateway B before B has
    /// heard of the demotion (B still takes the old admin token): the token B answers must carry
    /// the stored role, `user`, and be newer than the demotion's revocation without being an
    /// admin's. Answered with the old token's role, it was a fresh admin token that outlived the
    /// demotion.
    @Test("a password change through a gateway that has not yet seen a demotion answers a token of the demoted role")
    func passwordChangeAfterDemotionElsewhere() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let userPort = try freePort()
        let gatewayPorts = [try freePort(), try freePort()]
        let environment = [
            "DATA_DIR": directory.path,
            "JWT_SECRET": PlatformUnderTest.jwtSecret,
            "SECRET_KEY_MASTER_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            "BCRYPT_COST": "4",
            "ADMIN_USERNAME": PlatformUnderTest.adminUsername,
            "ADMIN_PASSWORD": PlatformUnderTest.adminPassword,
            "USER_SERVICE_ADDRS": "127.0.0.1:\(userPort)",
            "USER_SERVICE_PORT": "\(userPort)",
            "AI_SERVICE_ADDRS": "127.0.0.1:\(try freePort())",
            "LOG_LEVEL": "notice",
        ]
        let processes = ProcessSet(directory: directory.path)
        defer { processes.killAll() }
        let migrate = try processes.start("migrate", ["migrate"], environment: environment)
        migrate.waitUntilExit()
        #expect(migrate.terminationStatus == 0, "migrate failed: \(processes.log("migrate"))")
        _ = try processes.start("users", ["user-service"], environment: environment)
        try await waitUntilListening([userPort], processes)
        // B polls for revocations as seldom as it may, so that it acts on the old token first.
        for (index, (port, poll)) in zip(gatewayPorts, ["500", "5000"]).enumerated() {
            _ = try processes.start("gateway-\(index)", ["gateway"], environment: environment.merging([
                "HTTP_PORT": "\(port)", "REVOCATION_POLL_MILLISECONDS": poll,
            ]) { $1 })
        }
        let gatewayA = HTTPTestClient(port: gatewayPorts[0])
        let gatewayB = HTTPTestClient(port: gatewayPorts[1])
        let adminLogin = try await firstCall(processes) {
            try await gatewayA.send("PUT", "/auth/login", json: #"{"username":"\#(PlatformUnderTest.adminUsername)","password":"\#(PlatformUnderTest.adminPassword)"}"#)
        }
        let adminToken = try #require(adminLogin.data["accessToken"] as? String, "\(adminLogin.status); logs: \(processes.allLogs())")
        // No AI service here (`/health` would say so): B's first call is a login too.
        _ = try await firstCall(processes) {
            try await gatewayB.send("PUT", "/auth/login", json: #"{"username":"\#(PlatformUnderTest.adminUsername)","password":"\#(PlatformUnderTest.adminPassword)"}"#)
        }

        // B may poll between the demotion and the password change (one chance in hundreds): then
        // it refuses the old token, which proves nothing here, and the scenario runs again.
        var exercised = false
        for attempt in 1...3 where !exercised {
            let username = "deputy\(attempt)"
            let registered = try await gatewayA.send("POST", "/user/register", json: #"{"username":"\#(username)","password":"password123"}"#)
            let id = try #require(registered.data["id"] as? String, "\(registered.status) \(String(decoding: registered.body, as: UTF8.self))")
            let promoted = try await gatewayA.send("PATCH", "/user/update_security", json: #"{"id":"\#(id)","role":"admin"}"#, token: adminToken)
            #expect(promoted.status == 200)
            let login = try await gatewayB.send("PUT", "/auth/login", json: #"{"username":"\#(username)","password":"password123"}"#)
            let oldToken = try #require(login.data["accessToken"] as? String)
            #expect(try Self.role(in: oldToken) == "admin")

            let demoted = try await gatewayA.send("PATCH", "/user/update_security", json: #"{"id":"\#(id)","role":"user"}"#, token: adminToken)
            #expect(demoted.status == 200)
            guard try await gatewayB.get("/user", token: oldToken).status == 200 else { continue }
            let changed = try await gatewayB.send("PATCH", "/user/update", json: #"{"password":"password456"}"#, token: oldToken)
            guard changed.status == 200 else {
                #expect(changed.status == 401, "\(changed.status) \(String(decoding: changed.body, as: UTF8.self))")
                continue
            }
            exercised = true
            let newToken = try #require(changed.data["accessToken"] as? String, "\(String(decoding: changed.body, as: UTF8.self))")
            #expect(try Self.role(in: newToken) == "user")
            #expect(try await gatewayB.get("/user", token: newToken).status == 403)
            #expect(try await gatewayB.get("/user/current", token: newToken).status == 200)
            #expect(try await gatewayB.get("/user", token: oldToken).status == 401)
        }
        #expect(exercised, "gateway B took in the demotion before the password change three times")
    }

    /// The `role` claim of a JWT (its payload, base64url).
    private static func role(in token: String) throws -> String? {
        let parts = token.split(separator: ".")
        try #require(parts.count == 3)
        var payload = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        payload += String(repeating: "=", count: (4 - payload.count % 4) % 4)
        let data = try #require(Data(base64Encoded: payload))
        let claims = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return claims["role"] as? String
    }

    @Test("signed AI calls through two gateways and two AI service replicas sharing one database", arguments: TestDatabaseKind.enabled)
    func replicatedAIServices(kind: TestDatabaseKind) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let provider = try await FakeProvider.start()
        let userPort = try freePort()
        let aiPorts = [try freePort(), try freePort()]
        let gatewayPorts = [try freePort(), try freePort()]
        var environment = [
            "DATA_DIR": directory.path,
            "JWT_SECRET": PlatformUnderTest.jwtSecret,
            "SECRET_KEY_MASTER_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            "BCRYPT_COST": "4",
            "USER_SERVICE_PORT": "\(userPort)",
            "USER_SERVICE_ADDRS": "127.0.0.1:\(userPort)",
            "AI_SERVICE_ADDRS": aiPorts.map { "127.0.0.1:\($0)" }.joined(separator: ","),
            "AI_PROVIDERS": "openai",
            "AI_PROVIDER_OPENAI_BASE_URL": provider.baseURL,
            "AI_RATE_LIMIT_PER_MINUTE": "6",
            "LOG_LEVEL": "debug",
        ]
        environment["USER_DATABASE_URL"] = try await kind.makeLocation(in: directory, name: "user").url
        environment["AI_DATABASE_URL"] = try await kind.makeLocation(in: directory, name: "ai").url

        let processes = ProcessSet(directory: directory.path)
        defer {
            processes.killAll()
        }
        let migrate = try processes.start("migrate", ["migrate"], environment: environment)
        migrate.waitUntilExit()
        #expect(migrate.terminationStatus == 0, "migrate failed: \(processes.log("migrate"))")
        _ = try processes.start("user", ["user-service"], environment: environment)
        for (index, port) in aiPorts.enumerated() {
            _ = try processes.start("ai-\(index)", ["ai-service"], environment: environment.merging(["AI_SERVICE_PORT": "\(port)"]) { $1 })
        }
        try await waitUntilListening([userPort] + aiPorts, processes)
        for (index, port) in gatewayPorts.enumerated() {
            _ = try processes.start("gateway-\(index)", ["gateway"], environment: environment.merging(["HTTP_PORT": "\(port)"]) { $1 })
        }
        try await waitUntil("gateways healthy; logs: \(processes.allLogs())") {
            let a = try? await HTTPTestClient(port: gatewayPorts[0]).get("/health").status
            let b = try? await HTTPTestClient(port: gatewayPorts[1]).get("/health").status
            return a == 200 && b == 200
        }

        let registered = try await firstCall(processes) {
            try await HTTPTestClient(port: gatewayPorts[0]).send("POST", "/user/register", json: #"{"username":"device-owner","password":"password123"}"#)
        }
        #expect(registered.status == 200, "\(registered.status) \(String(decoding: registered.body, as: UTF8.self)); logs: \(processes.allLogs())")
        let accessKey = try #require(registered.data["accessKey"] as? String)
        let secretKey = try #require(registered.data["secretKey"] as? String)
        let devices = gatewayPorts.map { SignedClient(port: $0, accessKey: accessKey, secretKey: secretKey) }

        // A nonce used through one gateway is refused through the other.
        let nonce = "nonce-\(UUID().uuidString)"
        #expect(try await devices[0].json("/ai/invoke/chat_completion", #"{"question":"hello"}"#, nonce: nonce).status == 200)
        let replay = try await devices[1].json("/ai/invoke/chat_completion", #"{"question":"hello"}"#, nonce: nonce)
        #expect(replay.status == 409 && replay.message == "NonceReused")

        // Six calls in any 60 seconds per key, counted in the shared database whichever replica
        // serves them: with the nonce's call, the sixth of these is refused.
        var statuses: [Int] = []
        for index in 0..<6 {
            statuses.append(try await devices[index % 2].json("/ai/invoke/chat_completion", #"{"question":"call \#(index)"}"#).status)
        }
        #expect(statuses == [200, 200, 200, 200, 200, 429], "\(statuses)")
        #expect(statuses.contains(429), "\(statuses)")
        #expect(statuses.filter { $0 != 429 }.allSatisfy { $0 == 200 }, "\(statuses)")
        // Both replicas served calls.
        for index in aiPorts.indices {
            #expect(processes.log("ai-\(index)").contains("CreateChatCompletion"), "replica \(index) served no call")
        }

        // A client that hangs up on a call in flight: the gateway cancels it over HTTP/2 (the
        // provider's request is abandoned) and counts and logs the request as the client's doing,
        // 499, not as a failure of the service (502 and a warning, before).
        provider.setBehavior(.hang)
        let leaver = try await HTTPTestClient(port: gatewayPorts[0]).send("POST", "/user/register", json: #"{"username":"leaver","password":"password123"}"#)
        let signer = Signer(accessKey: try #require(leaver.data["accessKey"] as? String), secretKey: try #require(leaver.data["secretKey"] as? String))
        let body = Array(#"{"question":"never mind"}"#.utf8)
        let signed = try signer.sign(
            method: "POST", url: "http://127.0.0.1:\(gatewayPorts[0])/ai/invoke/chat_completion",
            headers: [("content-type", "application/json")], body: body, contentSHA256: true, nonce: Signer.makeNonce()
        )
        var head = "POST /ai/invoke/chat_completion HTTP/1.1\r\nHost: 127.0.0.1:\(gatewayPorts[0])\r\nContent-Type: application/json\r\n"
        for header in signed.headersToAdd where header.name != "host" { head += "\(header.name): \(header.value)\r\n" }
        head += "Content-Length: \(body.count)\r\n\r\n"
        let chatCalls = provider.requests(to: .chat).count
        let connection = try await RawConnection.open(port: gatewayPorts[0])
        try await connection.send(Array(head.utf8) + body)
        #expect(await provider.waitUntil(timeout: .seconds(10)) { _ in provider.requests(to: .chat).count > chatCalls })
        await connection.close()
        #expect(await provider.waitUntil(timeout: .seconds(10)) { $0.requestsAbandoned >= 1 })
        let accessLine = { processes.log("gateway-0").split(separator: "\n").first { $0.contains("route=/ai/invoke/chat_completion") && $0.contains("status=499") } }
        try await waitUntil("an access line with 499; logs: \(processes.log("gateway-0"))") { accessLine() != nil }
        let failures = processes.log("gateway-0").split(separator: "\n").filter { $0.contains("request failed") && $0.contains("/ai/invoke/chat_completion") }
        #expect(failures.isEmpty, "\(failures)")
        await provider.stop()
    }

    @Test("one request's id is on the log lines of the gateway and the user service, and is sent back")
    func requestIdInLogs() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let processes = ProcessSet(directory: directory.path)
        defer { processes.killAll() }
        let (platform, client) = try await processes.startHealthyAll(environment: [
            "DATA_DIR": directory.path, "LOG_LEVEL": "debug", "BCRYPT_COST": "4",
        ])
        let reply = try await client.send(
            "POST", "/user/register", json: #"{"username":"traced","password":"password123"}"#, headers: [("x-request-id", "trace-me-4711")]
        )
        #expect(reply.status == 200)
        #expect(reply.headers.first(name: "x-request-id") == "trace-me-4711")
        platform.terminate()
        platform.waitUntilExit()
        #expect(platform.terminationStatus == 0)
        let lines = processes.log("all").split(separator: "\n").filter { $0.contains("request-id=trace-me-4711") }
        #expect(lines.contains { $0.contains("app=user-service") && $0.contains("rpc served") })
        #expect(lines.contains { $0.contains("[FluentKit]") })
        #expect(lines.contains { $0.contains("app=gateway") && $0.contains("request served") })
    }

    @Test("SIGHUP (a reload request) never ends a process, with no config file to read again too")
    func hangUpDoesNotEndTheProcess() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let processes = ProcessSet(directory: directory.path)
        defer { processes.killAll() }
        let (platform, client) = try await processes.startHealthyAll(environment: ["DATA_DIR": directory.path, "BCRYPT_COST": "4"])
        for _ in 0..<3 { kill(platform.processIdentifier, SIGHUP) }
        try await Task.sleep(for: .milliseconds(300))
        #expect(platform.isRunning, "ended by SIGHUP: \(platform.terminationReason) \(platform.terminationStatus)")
        #expect(try await client.get("/health").status == 200)
        platform.terminate()
        platform.waitUntilExit()
        #expect(platform.terminationStatus == 0)
    }

    @Test("LOG_FORMAT=json writes one JSON object per line, with the request id and the component")
    func jsonLogs() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let processes = ProcessSet(directory: directory.path)
        defer { processes.killAll() }
        let (platform, client) = try await processes.startHealthyAll(environment: [
            "DATA_DIR": directory.path, "LOG_LEVEL": "debug", "LOG_FORMAT": "json", "BCRYPT_COST": "4",
        ])
        let reply = try await client.send(
            "POST", "/user/register", json: #"{"username":"jsonlogs","password":"password123"}"#, headers: [("x-request-id", "json-4711")]
        )
        #expect(reply.status == 200)
        platform.terminate()
        platform.waitUntilExit()
        let lines = processes.log("all").split(separator: "\n")
        #expect(lines.count > 5)
        var objects: [[String: String]] = []
        for line in lines {
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String]
            #expect(object != nil, "not a JSON object: \(line)")
            if let object { objects.append(object) }
        }
        #expect(objects.allSatisfy { $0["time"] != nil && $0["level"] != nil && $0["message"] != nil })
        let traced = objects.filter { $0["request_id"] == "json-4711" }
        #expect(traced.contains { $0["component"] == "user-service" })
        #expect(traced.contains { $0["component"] == "gateway" })
    }

    @Test("seed creates the configured admin and a demo user once, and leaves them alone after")
    func seed() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let processes = ProcessSet(directory: directory.path)
        let environment = [
            "DATA_DIR": directory.path, "BCRYPT_COST": "4", "ADMIN_USERNAME": "operator", "ADMIN_PASSWORD": "operator-password",
        ]
        let first = try processes.start("seed-1", ["seed"], environment: environment)
        first.waitUntilExit()
        #expect(first.terminationStatus == 0)
        let output = processes.log("seed-1")
        #expect(output.contains("admin: operator (password from ADMIN_PASSWORD)"))
        #expect(output.contains("demo: demo password: "))
        #expect(output.range(of: #"demo access key: [A-Za-z0-9]{20} secret key: [A-Za-z0-9]{40}"#, options: .regularExpression) != nil)

        let second = try processes.start("seed-2", ["seed"], environment: environment)
        second.waitUntilExit()
        #expect(second.terminationStatus == 0)
        #expect(processes.log("seed-2").contains("admin: operator exists, left unchanged"))
        #expect(processes.log("seed-2").contains("demo: demo exists, left unchanged"))
    }

    @Test("--help explains every subcommand")
    func help() throws {
        let processes = ProcessSet(directory: NSTemporaryDirectory())
        for command in ["all", "gateway", "user-service", "ai-service", "migrate", "seed"] {
            let process = try processes.start("help-\(command)", [command, "--help"], environment: [:])
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
            let text = processes.log("help-\(command)")
            #expect(text.contains("--config") && text.contains("--env-file"), "\(command): \(text)")
        }
    }

    @Test("a bad setting stops start-up with a clear message")
    func badConfiguration() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let processes = ProcessSet(directory: directory.path)
        let process = try processes.start("bad", ["all"], environment: ["DATA_DIR": directory.path, "HTTP_PORT": "ninety", "LOG_LEVEL": "loud"])
        process.waitUntilExit()
        #expect(process.terminationStatus == 78)
        let log = processes.log("bad")
        #expect(log.contains("LOG_LEVEL"))
    }
}

/// Services first, then gateways, as a deployment would: a gateway that starts before a service
/// listens waits out a reconnect backoff before its calls go through.
func waitUntilListening(_ ports: [Int], _ processes: ProcessSet) async throws {
    for port in ports {
        try await waitUntil("a service listening on \(port); logs: \(processes.allLogs())", timeout: .seconds(30)) {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { return false }
            defer { close(fd) }
            return withLoopbackAddress(port) { connect(fd, $0, $1) } == 0
        }
    }
}

/// The first call through freshly started gateways. `/health` probes each instance on a fresh
/// connection, so it can pass while a gateway's own connection to a service that started after it
/// is still waiting out its reconnect backoff (answering 503 meanwhile): retry until it is not.
func firstCall(_ processes: ProcessSet, _ call: () async throws -> HTTPTestClient.Reply) async throws -> HTTPTestClient.Reply {
    var reply: HTTPTestClient.Reply?
    try await waitUntil("a first call that is not 503; logs: \(processes.allLogs())", timeout: .seconds(10)) {
        reply = try? await call()
        return reply != nil && reply?.status != 503
    }
    guard let reply else { throw TestFailure("no reply") }
    return reply
}

extension ProcessSet {
    /// `aisaas all` on a free port with `environment`, once it answers `/health`.
    func startHealthyAll(environment: [String: String]) async throws -> (Process, HTTPTestClient) {
        let port = try freePort()
        let platform = try start("all", ["all"], environment: environment.merging(["HTTP_PORT": "\(port)"]) { $1 })
        let client = HTTPTestClient(port: port)
        try await waitUntil("platform healthy: \(log("all"))") { (try? await client.get("/health").status) == 200 }
        return (platform, client)
    }
}

/// Child processes of the built `aisaas` binary, each logging to a file.
final class ProcessSet: @unchecked Sendable {
    // Used from one test task only; the lock-free state is never shared across tasks.
    let directory: String
    private var processes: [Process] = []

    init(directory: String) {
        self.directory = directory
    }

    static var binary: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("aisaas")
    }

    func start(_ name: String, _ arguments: [String], environment: [String: String], executable: URL? = nil) throws -> Process {
        let process = Process()
        process.executableURL = executable ?? Self.binary
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TEST_") }
        // Many processes share this machine: no metrics listener unless a test asks for one.
        env["METRICS_PORT"] = "0"
        env.merge(environment) { $1 }
        process.environment = env
        let logPath = directory + "/\(name).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = log
        process.standardError = log
        try process.run()
        processes.append(process)
        return process
    }

    func log(_ name: String) -> String {
        (try? String(contentsOfFile: directory + "/\(name).log", encoding: .utf8)) ?? ""
    }

    func allLogs() -> String {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return files.filter { $0.hasSuffix(".log") }.map { "== \($0)\n" + log(String($0.dropLast(4))) }.joined(separator: "\n")
    }

    func killAll() {
        for process in processes where process.isRunning {
            process.interrupt()
        }
        for process in processes where process.isRunning {
            process.waitUntilExit()
        }
    }
}

/// Calls `body` with 127.0.0.1:`port` as a socket address (for bind or connect).
func withLoopbackAddress(_ port: Int, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let length = socklen_t(MemoryLayout<sockaddr_in>.size)
    return withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) } }
}

/// A loopback port for a child process to bind (`LoopbackPort.free`: never one handed out before
/// in this process).
func freePort() throws -> Int {
    try LoopbackPort.free()
}

func waitUntil(_ what: @autoclosure () -> String, timeout: Duration = .seconds(60), _ condition: () async -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if await condition() { return }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw TestFailure("timed out waiting: \(what())")
}
