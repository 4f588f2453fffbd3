import Foundation
import Glibc
import Testing
import TestSupport

/// Outlier ejection with the real processes: a replica that stops answering without closing its
/// sockets (SIGSTOP) leaves the gateway's rotation.
@Suite("frozen replica", .serialized)
struct FrozenReplicaTests {
    @Test("one of two user service replicas frozen: ≥ 95% of calls succeed, and none waits past 2 s once it is ejected")
    func frozenReplicaIsEjected() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let userPorts = [try freePort(), try freePort()]
        let aiPort = try freePort(), gatewayPort = try freePort()
        let environment = [
            "DATA_DIR": directory.path, "JWT_SECRET": PlatformUnderTest.jwtSecret,
            "SECRET_KEY_MASTER_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "BCRYPT_COST": "4",
            "USER_SERVICE_ADDRS": userPorts.map { "127.0.0.1:\($0)" }.joined(separator: ","),
            "AI_SERVICE_ADDRS": "127.0.0.1:\(aiPort)", "AI_SERVICE_PORT": "\(aiPort)", "HTTP_PORT": "\(gatewayPort)",
            "LOG_LEVEL": "notice",
        ]
        let processes = ProcessSet(directory: directory.path)
        defer { processes.killAll() }
        let migrate = try processes.start("migrate", ["migrate"], environment: environment)
        migrate.waitUntilExit()
        let users = try userPorts.enumerated().map { index, port in
            try processes.start("user-\(index)", ["user-service"], environment: environment.merging(["USER_SERVICE_PORT": "\(port)"]) { $1 })
        }
        _ = try processes.start("ai", ["ai-service"], environment: environment)
        try await waitUntilListening(userPorts + [aiPort], processes)
        _ = try processes.start("gateway", ["gateway"], environment: environment)
        let http = HTTPTestClient(port: gatewayPort)
        try await waitUntil("gateway healthy; logs: \(processes.allLogs())") { (try? await http.get("/health").status) == 200 }
        _ = try await firstCall(processes) {
            try await http.send("POST", "/user/register", json: #"{"username":"steady","password":"password123"}"#)
        }
        let token = try #require(try await http.send("PUT", "/auth/login", json: #"{"username":"steady","password":"password123"}"#).data["accessToken"] as? String)

        kill(users[1].processIdentifier, SIGSTOP)
        defer { kill(users[1].processIdentifier, SIGCONT) }
        let frozen = ContinuousClock.now
        var ejectedAt: ContinuousClock.Instant?
        var calls: [(started: ContinuousClock.Instant, took: Duration, ok: Bool)] = []
        while ContinuousClock.now - frozen < .seconds(10) {
            let started = ContinuousClock.now
            let status = (try? await http.get("/user/current", token: token).status) ?? 0
            calls.append((started, ContinuousClock.now - started, status == 200))
            if ejectedAt == nil, let health = try? await http.get("/health"), health.status == 503,
               health.message.contains("127.0.0.1:\(userPorts[1])") {
                ejectedAt = ContinuousClock.now
            }
        }
        let succeeded = calls.filter(\.ok).count
        #expect(Double(succeeded) >= 0.95 * Double(calls.count), "\(succeeded) of \(calls.count) succeeded")
        let ejected = try #require(ejectedAt, "the gateway's health never named the frozen instance")
        #expect(ejected - frozen < .seconds(8), "named after \(ejected - frozen)")
        let after = calls.filter { $0.started > ejected }
        #expect(after.count >= 10, "calls kept flowing after the ejection: \(after.count)")
        let slowest = after.map(\.took).max() ?? .zero
        #expect(slowest < .seconds(2), "a call waited \(slowest) after the ejection")

        // Thawed, it serves again and comes back.
        kill(users[1].processIdentifier, SIGCONT)
        try await waitUntil("the thawed replica serving again", timeout: .seconds(20)) { (try? await http.get("/health").status) == 200 }
    }
}
