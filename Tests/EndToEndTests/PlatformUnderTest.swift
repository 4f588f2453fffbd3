import AISaaSCLI
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOFoundationCompat
import Platform
import ServiceLifecycle
import TestSupport

/// The whole platform (`aisaas all`) on free loopback ports and a fresh database, driven over
/// HTTP like a client.
final class PlatformUnderTest: Sendable {
    static let adminUsername = "root-admin"
    static let adminPassword = "admin-password-1"
    static let jwtSecret = "test-jwt-secret-0123456789abcdef0123456789"

    let port: Int
    let directory: TemporaryDirectory
    private let group: ServiceGroup
    private let running: Task<Void, any Error>

    private init(port: Int, directory: TemporaryDirectory, group: ServiceGroup, running: Task<Void, any Error>) {
        self.port = port
        self.directory = directory
        self.group = group
        self.running = running
    }

    static func start(_ kind: TestDatabaseKind, settings extra: [String: String] = [:]) async throws -> PlatformUnderTest {
        let directory = try TemporaryDirectory()
        var values = [
            "DATA_DIR": directory.path,
            "HTTP_PORT": "0",
            "BCRYPT_COST": "4",
            "ADMIN_USERNAME": adminUsername,
            "ADMIN_PASSWORD": adminPassword,
            "JWT_SECRET": jwtSecret,
            "LOG_LEVEL": "warning",
            "METRICS_PORT": "0",
        ]
        if kind == .postgres {
            values["USER_DATABASE_URL"] = try await kind.makeLocation(in: directory, name: "user").url
            values["AI_DATABASE_URL"] = try await kind.makeLocation(in: directory, name: "ai").url
        }
        values.merge(extra) { _, new in new }
        let (ports, portSink) = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "platform-under-test")
        logger.logLevel = .warning
        let plan = try await buildAllInOne(config: PlatformConfiguration.fixed(values), logger: logger) { port in
            portSink.yield(port)
        }
        let group = plan.makeGroup(shutdownSignals: [])
        let running = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw CancellationError() }
        let platform = PlatformUnderTest(port: port, directory: directory, group: group, running: running)
        // Ready as a load balancer would see it: the gateway has heard from every instance.
        let deadline = ContinuousClock.now + .seconds(30)
        while (try? await platform.request(.GET, "/health", headers: [("Connection", "close")]).status) != 200, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        return platform
    }

    /// Stops gracefully, as on SIGTERM, and removes the data.
    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await running.value
        directory.remove()
    }

    static func with(_ kind: TestDatabaseKind, settings: [String: String] = [:], _ body: (PlatformUnderTest) async throws -> Void) async throws {
        let platform = try await start(kind, settings: settings)
        do {
            try await body(platform)
        } catch {
            try? await platform.stop()
            throw error
        }
        try await platform.stop()
    }

    // MARK: - HTTP

    typealias Reply = HTTPTestClient.Reply

    func request(
        _ method: HTTPMethod, _ path: String, json: String? = nil, bytes: [UInt8]? = nil,
        token: String? = nil, headers: [(String, String)] = []
    ) async throws -> Reply {
        try await HTTPTestClient(port: port).send(method.rawValue, path, json: json, bytes: bytes, token: token, headers: headers)
    }

    // MARK: - Flows

    func register(_ username: String, password: String = "password123") async throws -> Reply {
        try await request(.POST, "/user/register", json: #"{"username":"\#(username)","password":"\#(password)"}"#)
    }

    func login(_ username: String, password: String = "password123") async throws -> Reply {
        try await request(.PUT, "/auth/login", json: #"{"username":"\#(username)","password":"\#(password)"}"#)
    }

    /// Registers (if needed) and logs in; returns the access token.
    func token(_ username: String, password: String = "password123") async throws -> String {
        let reply = try await login(username, password: password)
        guard let token = reply.data["accessToken"] as? String else {
            throw TestFailure("login of \(username) failed: \(reply.status) \(reply.message)")
        }
        return token
    }

    func adminToken() async throws -> String {
        try await token(Self.adminUsername, password: Self.adminPassword)
    }
}

/// Sends requests to a gateway on loopback, as a client would.
struct HTTPTestClient: Sendable {
    let port: Int

    struct Reply: @unchecked Sendable {
        // Holds JSON from JSONSerialization (Any); created and read within one test task.
        let status: Int
        let headers: HTTPHeaders
        let body: Data

        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
        var data: [String: Any] { json["data"] as? [String: Any] ?? [:] }
        var message: String { json["message"] as? String ?? "" }
        var metaProperties: Set<String> {
            Set((json["meta"] as? [[String: Any]] ?? []).compactMap { $0["property"] as? String })
        }
    }

    func get(_ path: String, token: String? = nil) async throws -> Reply {
        try await send("GET", path, token: token)
    }

    func send(
        _ method: String, _ path: String, json: String? = nil, bytes: [UInt8]? = nil,
        token: String? = nil, headers extra: [(String, String)] = [], contentType: String = "application/json"
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = HTTPMethod(rawValue: method)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        for (name, value) in extra { request.headers.add(name: name, value: value) }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: json))
        } else if let bytes {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(bytes: bytes))
        }
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            let body = try await response.body.collect(upTo: 16 << 20)
            return Reply(status: Int(response.status.code), headers: response.headers, body: Data(buffer: body))
        } catch {
            throw TestFailure("\(method) \(path): \(error)")
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension DatabaseLocation {
    var url: String {
        switch self {
        case .sqlite(let path): "sqlite:\(path)"
        case .postgres(let url): url
        }
    }
}
