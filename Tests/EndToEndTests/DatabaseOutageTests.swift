import Foundation
import Glibc
import Testing
import TestSupport

/// A PostgreSQL cluster of the test's own (scripts/test-postgres.sh), so that it can be stopped
/// and started again without touching the one the other suites share.
final class ThrowawayPostgres: Sendable {
    let directory: String
    let port: Int

    static var isInstalled: Bool {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []).contains {
            FileManager.default.isExecutableFile(atPath: "/usr/lib/postgresql/\($0)/bin/initdb")
        }
    }

    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts/test-postgres.sh").path

    init(directory: String) throws {
        self.directory = directory
        let output = try Self.run(["start", directory])
        guard let port = output.split(separator: ":").last.flatMap({ Int($0.split(separator: "/").first ?? "") }) else {
            throw TestFailure("no port in \(output)")
        }
        self.port = port
    }

    func url(_ database: String) -> String { "postgres://postgres@127.0.0.1:\(port)/\(database)" }

    func createDatabase(_ name: String) throws {
        _ = try Self.command("/usr/bin/env", ["psql", "-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres", "-qc", "CREATE DATABASE \(name)"])
    }

    func crash() throws { _ = try Self.run(["crash", directory]) }
    func resume() throws { _ = try Self.run(["resume", directory]) }
    func stop() { _ = try? Self.run(["stop", directory]) }

    private static func run(_ arguments: [String]) throws -> String {
        try command("/bin/bash", [script] + arguments)
    }

    /// Through `system`, not `Process`: Foundation's `Process` watches its child through a
    /// descriptor that the server the script daemonizes inherits, and would wait forever.
    private static func command(_ path: String, _ arguments: [String]) throws -> String {
        let outputPath = NSTemporaryDirectory() + "pg-script-\(UUID().uuidString).out"
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let quoted = ([path] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let status = system("\(quoted) >'\(outputPath)' 2>/dev/null")
        let output = ((try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard status == 0 else { throw TestFailure("\(arguments) failed (\(status)): \(output)") }
        return output
    }
}

@Suite("database outages", .serialized, .enabled(if: ThrowawayPostgres.isInstalled, "needs PostgreSQL (scripts/test.sh installs it)"))
struct DatabaseOutageTests {
    @Test("with PostgreSQL stopped, calls are 503 naming the database and health is NOT_SERVING; all recovers when it returns")
    func outageAndRecovery() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let postgres = try ThrowawayPostgres(directory: directory.path + "/pg")
        defer { postgres.stop() }
        try postgres.createDatabase("outage_user")
        try postgres.createDatabase("outage_ai")
        let userPort = try freePort(), aiPort = try freePort(), gatewayPort = try freePort()
        let environment = [
            "DATA_DIR": directory.path, "JWT_SECRET": PlatformUnderTest.jwtSecret,
            "SECRET_KEY_MASTER_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "BCRYPT_COST": "4",
            "ADMIN_USERNAME": PlatformUnderTest.adminUsername, "ADMIN_PASSWORD": PlatformUnderTest.adminPassword,
            "USER_DATABASE_URL": postgres.url("outage_user"), "AI_DATABASE_URL": postgres.url("outage_ai"),
            "USER_SERVICE_PORT": "\(userPort)", "USER_SERVICE_ADDRS": "127.0.0.1:\(userPort)",
            "AI_SERVICE_PORT": "\(aiPort)", "AI_SERVICE_ADDRS": "127.0.0.1:\(aiPort)", "HTTP_PORT": "\(gatewayPort)",
            "AI_PROVIDERS": "openai", "AI_PROVIDER_OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "LOG_LEVEL": "notice",
        ]
        let processes = ProcessSet(directory: directory.path)
        defer { processes.killAll() }
        _ = try processes.start("user", ["user-service"], environment: environment)
        _ = try processes.start("ai", ["ai-service"], environment: environment)
        try await waitUntilListening([userPort, aiPort], processes)
        _ = try processes.start("gateway", ["gateway"], environment: environment)
        let client = HTTPTestClient(port: gatewayPort)
        try await waitUntil("healthy; logs: \(processes.allLogs())") { (try? await client.get("/health").status) == 200 }
        let registered = try await firstCall(processes) {
            try await client.send("POST", "/user/register", json: #"{"username":"steady","password":"password123"}"#)
        }
        #expect(registered.status == 200)
        let token = try #require(try await client.send("PUT", "/auth/login", json: #"{"username":"steady","password":"password123"}"#).data["accessToken"] as? String)
        #expect(try await client.send("POST", "/ai/chat/model", json: #"{"name":"keeper"}"#, token: token).status == 200)

        try postgres.crash()
        // Every answer is an honest 503, never a 500, and health says which instances cannot serve.
        var statuses: [Int] = []
        var messages: Set<String> = []
        for _ in 0..<10 {
            for (method, path, body) in [("GET", "/user/current", nil), ("GET", "/ai/chat/model", nil), ("POST", "/user/register", #"{"username":"newcomer","password":"password123"}"#)] {
                let reply = try await client.send(method, path, json: body, token: path == "/user/register" ? nil : token)
                statuses.append(reply.status)
                messages.insert(reply.message)
            }
        }
        #expect(statuses.allSatisfy { $0 == 503 }, "\(statuses) \(messages)")
        #expect(messages.contains { $0.contains("user database is unavailable") }, "\(messages)")
        #expect(messages.contains { $0.contains("AI database is unavailable") } || messages.contains { $0.contains("revocations") }, "\(messages)")
        var lastHealth = ""
        try await waitUntil("health shows both services NOT_SERVING: \(lastHealth)", timeout: .seconds(15)) {
            let health = try? await client.get("/health")
            lastHealth = health?.message ?? "no answer"
            return health?.status == 503 && health?.message.contains("user-service@127.0.0.1:\(userPort) (NOT_SERVING)") == true
                && health?.message.contains("ai-service@127.0.0.1:\(aiPort) (NOT_SERVING)") == true
        }

        try postgres.resume()
        try await waitUntil("healthy again; logs: \(processes.allLogs())", timeout: .seconds(30)) { (try? await client.get("/health").status) == 200 }
        try await waitUntil("calls succeed again", timeout: .seconds(15)) {
            (try? await client.send("GET", "/user/current", token: token).status) == 200
        }
        let models = try await client.send("GET", "/ai/chat/model", token: token)
        #expect(models.status == 200)
        #expect((models.data["results"] as? [[String: Any]])?.first?["name"] as? String == "keeper")
        #expect(try await client.send("POST", "/user/register", json: #"{"username":"newcomer","password":"password123"}"#).status == 200)
        let logs = processes.allLogs()
        #expect(!logs.contains("unexpected failure"), "\(logs)")
    }
}
