import Foundation
import Glibc
import Testing
import TestSupport

/// The distributed layout on hosts of their own (network namespaces): etcd, PostgreSQL, a fake
/// provider, two user services, two AI services and two gateways, each at its own address, called
/// from a client host. Everything is found through the registry.
@Suite("several hosts", .serialized, .enabled(if: HostNetwork.available, "needs root and iproute2 (scripts/test.sh runs as root in CI)"))
struct MultiHostTests {
    /// A client host's HTTP call through curl; answers the status and the JSON envelope.
    struct Call {
        let network: HostNetwork
        let host: String

        func send(_ method: String, _ url: String, json: String? = nil, token: String? = nil) throws -> (status: Int, json: [String: Any]) {
            var command = ["curl", "-s", "-m", "15", "-o", "-", "-w", "\n%{http_code}", "-X", method, url]
            if let token { command += ["-H", "Authorization: Bearer \(token)"] }
            if let json { command += ["-H", "Content-Type: application/json", "--data-binary", json] }
            let (_, output) = try network.run(in: host, command)
            let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
            let status = Int(lines.last ?? "") ?? 0
            let body = lines.dropLast().joined(separator: "\n")
            return (status, (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:])
        }

        func data(_ reply: (status: Int, json: [String: Any])) -> [String: Any] { reply.json["data"] as? [String: Any] ?? [:] }
    }

    @Test("a new replica takes calls, a killed one is dropped, a frozen one ejected, an etcd change reaches both gateways, signed and /v1 calls work through either")
    func distributedLayout() async throws {
        let network = try HostNetwork()
        defer { network.remove() }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var databaseServer: Process?
        defer {
            databaseServer?.terminate()
            databaseServer?.waitUntilExit()
        }
        let processes = ProcessSet(directory: directory.path)
        defer { processes.killAll() }
        let etcd = try network.addHost("etcd", octet: 2)
        let postgres = try network.addHost("pg", octet: 3)
        let provider = try network.addHost("provider", octet: 4)
        let users = try (1...3).map { try network.addHost("user\($0)", octet: 10 + $0) }
        let ais = try (1...2).map { try network.addHost("ai\($0)", octet: 20 + $0) }
        let gateways = try (1...2).map { try network.addHost("gw\($0)", octet: 30 + $0) }
        // A third gateway finds the services by DNS: one name with a record per replica.
        let dnsGateway = try network.addHost("gw3", octet: 33)
        func dnsRecords(users: ArraySlice<String>) -> [(address: String, name: String)] {
            users.map { ($0, "users.fleet") } + ais.map { ($0, "ai.fleet") }
        }
        try network.setHosts("gw3", dnsRecords(users: users[0...1]))
        try network.addHost("client", octet: 40)
        let client = Call(network: network, host: "client")

        // etcd and PostgreSQL, each on its host.
        _ = try processes.start("etcd", on: "etcd", of: network, [
            "--name", "etcd", "--data-dir", directory.path + "/etcd", "--listen-client-urls", "http://\(etcd):2379",
            "--advertise-client-urls", "http://\(etcd):2379", "--listen-peer-urls", "http://\(etcd):2380",
            "--initial-advertise-peer-urls", "http://\(etcd):2380", "--initial-cluster", "etcd=http://\(etcd):2380", "--log-level", "error",
        ], environment: [:], executable: EtcdServer.binary ?? "/usr/bin/etcd")
        let postgresBin = try #require(
            (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql"))?.sorted().last.map { "/usr/lib/postgresql/\($0)/bin" },
            "PostgreSQL is needed (scripts/test.sh installs it)"
        )
        let pgData = directory.path + "/pg"
        try FileManager.default.createDirectory(atPath: pgData, withIntermediateDirectories: true)
        _ = chown(directory.path, 0, 0)
        chmod(directory.path, 0o755)
        let postgresUser = try #require(getpwnam("postgres")).pointee.pw_uid
        chown(pgData, postgresUser, 0)
        let initdb = try network.run(in: "pg", ["runuser", "-u", "postgres", "--", postgresBin + "/initdb", "-D", pgData + "/data", "-U", "postgres", "--auth=trust"])
        #expect(initdb.status == 0, "\(initdb.output)")
        // The other hosts reach it over the test's subnet, and nothing else can.
        let hba = try FileHandle(forWritingTo: URL(fileURLWithPath: pgData + "/data/pg_hba.conf"))
        try hba.seekToEnd()
        try hba.write(contentsOf: Data("host all all \(network.subnet).0/24 trust\n".utf8))
        try hba.close()
        // runuser passes SIGTERM on to the server (SIGINT it ignores); stopped after the services.
        let server = Process()
        server.executableURL = URL(fileURLWithPath: HostNetwork.ip ?? "/usr/sbin/ip")
        server.arguments = [
            "netns", "exec", network.namespace("pg"), "runuser", "-u", "postgres", "--", postgresBin + "/postgres", "-D", pgData + "/data",
            "-c", "listen_addresses=\(postgres)", "-c", "port=5432", "-c", "unix_socket_directories=\(pgData)", "-c", "fsync=off", "-c", "max_connections=200",
        ]
        _ = FileManager.default.createFile(atPath: directory.path + "/postgres.log", contents: nil)
        let serverLog = try FileHandle(forWritingTo: URL(fileURLWithPath: directory.path + "/postgres.log"))
        server.standardOutput = serverLog
        server.standardError = serverLog
        try server.run()
        databaseServer = server
        try await waitUntil("PostgreSQL answers; logs: \(processes.allLogs())", timeout: .seconds(30)) {
            (try? network.run(in: "client", [postgresBin + "/pg_isready", "-h", postgres, "-p", "5432"]).status) == 0
        }
        for database in ["users", "ai"] {
            let created = try network.run(in: "client", [postgresBin + "/createdb", "-h", postgres, "-U", "postgres", database])
            #expect(created.status == 0, "\(created.output)")
        }
        try await waitUntil("etcd answers", timeout: .seconds(30)) {
            (try? client.send("POST", "http://\(etcd):2379/v3/maintenance/status", json: "{}").status) == 200
        }

        // The provider stands in for a paid API on a host of its own.
        _ = try processes.start("provider", on: "provider", of: network, ["--host", provider], environment: [:],
                                executable: ProcessSet.binary.deletingLastPathComponent().appendingPathComponent("fake-provider").path)
        var providerURL = ""
        try await waitUntil("the provider prints its URL", timeout: .seconds(20)) {
            providerURL = processes.log("provider").split(separator: "\n").first.map(String.init) ?? ""
            return providerURL.hasPrefix("http://\(provider):")
        }

        let environment = [
            "JWT_SECRET": PlatformUnderTest.jwtSecret, "SECRET_KEY_MASTER_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "BCRYPT_COST": "4",
            "DISCOVERY": "etcd", "ETCD_ENDPOINTS": "http://\(etcd):2379", "ETCD_LEASE_TTL_SECONDS": "4", "LOG_LEVEL": "notice",
            "USER_DATABASE_URL": "postgres://postgres@\(postgres):5432/users", "AI_DATABASE_URL": "postgres://postgres@\(postgres):5432/ai",
            "DATA_DIR": directory.path,
        ]
        // The fleet's providers live in etcd, written by the operator's CLI from the client host.
        let configured = try network.run(in: "client", [
            ProcessSet.binary.path, "config", "set", "ai.providers=openai", "ai.provider.openai.base.url=\(providerURL)",
        ], environment: environment)
        #expect(configured.status == 0, "\(configured.output)")
        let migrate = try network.run(in: "client", [ProcessSet.binary.path, "migrate"], environment: environment)
        #expect(migrate.status == 0, "\(migrate.output)")

        func startUser(_ index: Int, logLevel: String = "notice") throws -> Process {
            try processes.start("user\(index + 1)", on: "user\(index + 1)", of: network, ["user-service"], environment: environment.merging([
                "USER_SERVICE_HOST": users[index], "USER_SERVICE_PORT": "9101", "INSTANCE_ID": "user\(index + 1)", "LOG_LEVEL": logLevel,
            ]) { $1 })
        }
        let firstUser = try startUser(0)
        _ = try startUser(1)
        var aiProcesses: [Process] = []
        for (index, address) in ais.enumerated() {
            aiProcesses.append(try processes.start("ai\(index + 1)", on: "ai\(index + 1)", of: network, ["ai-service"], environment: environment.merging([
                "AI_SERVICE_HOST": address, "AI_SERVICE_PORT": "9102", "INSTANCE_ID": "ai\(index + 1)",
            ]) { $1 }))
        }
        for (index, address) in gateways.enumerated() {
            _ = try processes.start("gw\(index + 1)", on: "gw\(index + 1)", of: network, ["gateway"], environment: environment.merging([
                "HTTP_HOST": address, "HTTP_PORT": "9000",
            ]) { $1 })
        }
        _ = try processes.start("gw3", on: "gw3", of: network, ["gateway"], environment: environment.merging([
            "HTTP_HOST": dnsGateway, "HTTP_PORT": "9000", "DISCOVERY": "dns", "DNS_REFRESH_SECONDS": "1",
            "USER_SERVICE_ADDRS": "users.fleet:9101", "AI_SERVICE_ADDRS": "ai.fleet:9102",
        ]) { $1 })
        let dnsGatewayURL = "http://\(dnsGateway):9000"
        let gatewayURLs = gateways.map { "http://\($0):9000" }
        func instances(_ gateway: String) -> [String] {
            let health = try? client.send("GET", gateway + "/health")
            return ((health?.json["data"] as? [String: Any])?["instances"] as? [[String: Any]] ?? []).compactMap { $0["address"] as? String }
        }
        try await waitUntil("every gateway sees two user and two AI services; logs: \(processes.allLogs())", timeout: .seconds(60)) {
            (gatewayURLs + [dnsGatewayURL]).allSatisfy {
                Set(instances($0)) == Set(["\(users[0]):9101", "\(users[1]):9101", "\(ais[0]):9102", "\(ais[1]):9102"])
            }
        }

        // An account, made through one gateway and used through the other.
        let registered = client.data(try client.send("POST", gatewayURLs[0] + "/user/register", json: #"{"username":"fleet","password":"password123"}"#))
        let accessKey = try #require(registered["accessKey"] as? String)
        let secretKey = try #require(registered["secretKey"] as? String)
        let token = try #require(client.data(try client.send("PUT", gatewayURLs[1] + "/auth/login", json: #"{"username":"fleet","password":"password123"}"#))["accessToken"] as? String)
        let apiKey = try #require(client.data(try client.send("POST", gatewayURLs[0] + "/user/api_keys", json: #"{"name":"fleet-app"}"#, token: token))["key"] as? String)
        let signing = environment.merging(["AISAAS_ACCESS_KEY": accessKey, "AISAAS_SECRET_KEY": secretKey]) { $1 }
        func signedCall(_ gateway: String, timeout: Int = 15) throws -> (status: Int32, output: String) {
            try network.run(in: "client", [
                ProcessSet.binary.path, "invoke", "chat", "--base-url", gateway, "--question", "hello from the client host", "--timeout", "\(timeout)",
            ], environment: signing)
        }
        for gateway in gatewayURLs + [dnsGatewayURL] {
            let signed = try signedCall(gateway)
            #expect(signed.status == 0, "signed call through \(gateway): \(signed.output)")
            let openAI = try client.send("POST", gateway + "/v1/chat/completions", json: #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#, token: apiKey)
            #expect(openAI.status == 200 && (openAI.json["choices"] as? [Any])?.isEmpty == false, "/v1 through \(gateway): \(openAI)")
        }

        // A new replica: in both gateways' rotation within seconds, and taking calls.
        _ = try startUser(2, logLevel: "debug")
        try network.setHosts("gw3", dnsRecords(users: users[0...2]))
        try await waitUntil("the new replica in every gateway's set, by the registry and by DNS", timeout: .seconds(20)) {
            (gatewayURLs + [dnsGatewayURL]).allSatisfy { instances($0).contains("\(users[2]):9101") }
        }
        for index in 0..<24 {
            #expect(try client.send("GET", gatewayURLs[index % 2] + "/user/current", token: token).status == 200)
        }
        #expect(processes.log("user3").contains("grpc.user.v1.UserService"), "the new replica served no call")

        // A killed replica: every call still succeeds, and its lease takes it out of both sets.
        kill(firstUser.processIdentifier, SIGKILL)
        firstUser.waitUntilExit()
        for index in 0..<20 {
            let current = try client.send("GET", gatewayURLs[index % 2] + "/user/current", token: token)
            #expect(current.status == 200, "\(current)")
        }
        try await waitUntil("the killed replica dropped", timeout: .seconds(20)) {
            gatewayURLs.allSatisfy { !instances($0).contains("\(users[0]):9101") }
        }

        // A frozen AI replica: ejected by each gateway, and nearly every call succeeds.
        kill(aiProcesses[0].processIdentifier, SIGSTOP)
        var succeeded = 0
        for index in 0..<20 where try signedCall(gatewayURLs[index % 2], timeout: 10).status == 0 {
            succeeded += 1
        }
        kill(aiProcesses[0].processIdentifier, SIGCONT)
        #expect(succeeded >= 19, "\(succeeded) of 20 calls succeeded with a replica frozen")

        // A rate limit set in etcd applies on both gateways' paths, with no restart.
        let limited = try network.run(in: "client", [ProcessSet.binary.path, "config", "set", "ai.rate.limit.per.minute=2"], environment: environment)
        #expect(limited.status == 0, "\(limited.output)")
        let second = client.data(try client.send("POST", gatewayURLs[1] + "/user/register", json: #"{"username":"limited","password":"password123"}"#))
        let limitedSigning = environment.merging(["AISAAS_ACCESS_KEY": try #require(second["accessKey"] as? String), "AISAAS_SECRET_KEY": try #require(second["secretKey"] as? String)]) { $1 }
        try await waitUntil("both gateways refuse the third call of a minute", timeout: .seconds(20)) {
            var outputs: [String] = []
            for gateway in gatewayURLs + gatewayURLs {
                let call = try? network.run(in: "client", [
                    ProcessSet.binary.path, "invoke", "chat", "--base-url", gateway, "--question", "limited", "--timeout", "10",
                ], environment: limitedSigning)
                outputs.append(call?.output ?? "")
            }
            // Two admitted in the minute, then refused through each gateway.
            return outputs.suffix(2).allSatisfy { $0.contains("at most 2 requests per minute") }
        }
    }
}
