import Foundation
import Glibc
import Testing
import TestSupport

/// `DISCOVERY=etcd` with the real processes and a real etcd: services register themselves, the
/// gateway follows the registry.
@Suite("discovery through etcd", .serialized)
struct RegistryDiscoveryTests {
    /// `aisaas registry list --json`: one object per registered instance.
    static func registered(_ processes: ProcessSet, _ environment: [String: String]) throws -> [[String: String]] {
        let name = "registry-list-\(UInt32.random(in: 0...UInt32.max))"
        let list = try processes.start(name, ["registry", "list", "--json"], environment: environment)
        list.waitUntilExit()
        return processes.log(name).split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: String]
        }
    }

    @Test("services register, the gateway follows: a new replica joins, a stopped one leaves at once, a killed one when its lease expires")
    func gatewayFollowsRegistry() async throws {
        let etcd = try EtcdServer()
        defer { etcd.remove() }
        try await etcd.start()
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let userPorts = [try freePort(), try freePort(), try freePort()]
        let aiPort = try freePort(), gatewayPort = try freePort()
        let environment = [
            "DATA_DIR": directory.path, "JWT_SECRET": PlatformUnderTest.jwtSecret,
            "SECRET_KEY_MASTER_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "BCRYPT_COST": "4",
            "DISCOVERY": "etcd", "ETCD_ENDPOINTS": etcd.endpoint, "ETCD_PREFIX": "/test-platform", "ETCD_LEASE_TTL_SECONDS": "4",
            "AI_SERVICE_PORT": "\(aiPort)", "HTTP_PORT": "\(gatewayPort)", "LOG_LEVEL": "notice",
        ]
        let processes = ProcessSet(directory: directory.path)
        defer { processes.killAll() }
        let migrate = try processes.start("migrate", ["migrate"], environment: environment)
        migrate.waitUntilExit()
        func startUser(_ index: Int) throws -> Process {
            try processes.start(
                "user-\(index)", ["user-service"],
                environment: environment.merging(["USER_SERVICE_PORT": "\(userPorts[index])", "INSTANCE_ID": "user-\(index)"]) { $1 }
            )
        }
        // The gateway first, with nothing registered: a call fails at once, 503 naming the
        // service, instead of waiting for an instance.
        _ = try processes.start("gateway", ["gateway"], environment: environment)
        let http = HTTPTestClient(port: gatewayPort)
        try await waitUntilListening([gatewayPort], processes)
        let started = ContinuousClock.now
        let early = try await http.send("PUT", "/auth/login", json: #"{"username":"nobody","password":"password123"}"#)
        #expect(early.status == 503 && early.message.contains("user-service"), "\(early.status) \(early.message)")
        #expect(ContinuousClock.now - started < .seconds(8), "answered without waiting out the call's deadline")

        let first = try startUser(0)
        _ = try processes.start("ai", ["ai-service"], environment: environment.merging(["INSTANCE_ID": "ai-0"]) { $1 })
        try await waitUntilListening([userPorts[0], aiPort], processes)
        try await waitUntil("both services registered and healthy; logs: \(processes.allLogs())", timeout: .seconds(30)) {
            guard let health = try? await http.get("/health"), health.status == 200 else { return false }
            return (health.data["instances"] as? [Any])?.count == 2
        }
        let health = try await http.get("/health")
        let registry = try #require(health.data["registry"] as? [String: Any])
        #expect(registry["status"] as? String == "REACHABLE")
        let listed = try Self.registered(processes, environment)
        #expect(Set(listed.map { $0["id"] ?? "" }) == ["user-0", "ai-0"])
        #expect(listed.first { $0["id"] == "user-0" }?["address"] == "127.0.0.1:\(userPorts[0])")
        #expect(listed.allSatisfy { $0["state"] == "serving" })

        // The container health check: 0 for a serving process, 1 otherwise.
        for (arguments, status) in [
            (["probe", "--grpc", "127.0.0.1:\(userPorts[0])"], Int32(0)), (["probe", "http://127.0.0.1:\(gatewayPort)/health"], 0),
            (["probe", "--grpc", "127.0.0.1:\(userPorts[2])"], 1),
        ] {
            let probe = try processes.start("probe-\(arguments.count)-\(status)", arguments, environment: [:])
            probe.waitUntilExit()
            #expect(probe.terminationStatus == status, "\(arguments)")
        }

        let registeredUser = try await firstCall(processes) {
            try await http.send("POST", "/user/register", json: #"{"username":"found","password":"password123"}"#)
        }
        #expect(registeredUser.status == 200)
        let token = try #require(try await http.send("PUT", "/auth/login", json: #"{"username":"found","password":"password123"}"#).data["accessToken"] as? String)

        // A new replica: registered and in the gateway's rotation within seconds.
        let second = try startUser(1)
        try await waitUntil("the second replica in the gateway's set", timeout: .seconds(20)) {
            let instances = (try? await http.get("/health"))?.data["instances"] as? [[String: Any]] ?? []
            return instances.contains { ($0["address"] as? String)?.hasSuffix(":\(userPorts[1])") == true }
        }
        // The first dies without leaving: every call still succeeds, and its lease takes it out.
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        for _ in 0..<20 { #expect(try await http.get("/user/current", token: token).status == 200) }
        try await waitUntil("the killed replica's key expired", timeout: .seconds(20)) {
            (try? Self.registered(processes, environment).map { $0["id"] ?? "" }.sorted()) == ["ai-0", "user-1"]
        }

        // A third joins; the second stops cleanly and leaves the registry at once (well before its TTL).
        _ = try startUser(2)
        try await waitUntil("the third replica registered", timeout: .seconds(20)) {
            (try? Self.registered(processes, environment).contains { $0["id"] == "user-2" }) == true
        }
        try await waitUntil("the third replica in the gateway's set", timeout: .seconds(20)) {
            let instances = (try? await http.get("/health"))?.data["instances"] as? [[String: Any]] ?? []
            return instances.contains { ($0["address"] as? String)?.hasSuffix(":\(userPorts[2])") == true }
        }
        second.terminate()
        second.waitUntilExit()
        #expect(try Self.registered(processes, environment).map { $0["id"] ?? "" }.sorted() == ["ai-0", "user-2"], "gone on shutdown")
        for _ in 0..<20 { #expect(try await http.get("/user/current", token: token).status == 200) }
        // Health lists the instances registered now: those gone are not reported as failing.
        func healthAddresses() async -> (status: Int, addresses: [String]) {
            guard let health = try? await http.get("/health") else { return (0, []) }
            let instances = health.data["instances"] as? [[String: Any]] ?? []
            return (health.status, instances.compactMap { $0["address"] as? String }.sorted())
        }
        let live = ["127.0.0.1:\(aiPort)", "127.0.0.1:\(userPorts[2])"].sorted()
        var seen = (status: 0, addresses: [String]())
        try await waitUntil("health lists the live instances only: \(seen)", timeout: .seconds(20)) {
            seen = await healthAddresses()
            return seen.status == 200 && seen.addresses == live
        }
        try await Task.sleep(for: .seconds(2))
        seen = await healthAddresses()
        #expect(seen.status == 200 && seen.addresses == live, "\(seen)")
    }
}
