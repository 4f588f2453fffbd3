import AISaaSCLI
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Platform
import ServiceLifecycle
import TestSupport
@testable import Gateway

/// The platform in this test process as `aisaas all` wires it (the user and AI services on gRPC's
/// in-process transport, SQLite in a temporary directory, a fake provider on loopback), with the
/// gateway's router driven by Hummingbird's test client: no HTTP server and no sockets between
/// the client and the routes, so a route's behaviour is tested close to its code. Topology and
/// whole flows over real sockets stay in EndToEndTests. Each test runs a whole platform: the
/// suites using this run their tests one at a time (`.serialized`), so that there are at most as
/// many platforms at once as suites, beside the suites with deadlines.
struct GatewayHarness: Sendable {
    static let adminUsername = "harness-admin"
    static let adminPassword = "harness-admin-password"

    let http: any TestClientProtocol
    let provider: FakeProvider

    /// Runs `body` against a fresh platform, then stops it as SIGTERM would.
    static func with(settings extra: [String: String] = [:], _ body: @Sendable (GatewayHarness) async throws -> Void) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let provider = try await FakeProvider.start()
        var values = [
            "DATA_DIR": directory.path,
            "BCRYPT_COST": "4",
            "ADMIN_USERNAME": adminUsername,
            "ADMIN_PASSWORD": adminPassword,
            "JWT_SECRET": testJWTSecret,
            "LOG_LEVEL": "warning",
            "METRICS_PORT": "0",
            "AI_PROVIDERS": "openai",
            "AI_PROVIDER_OPENAI_BASE_URL": provider.baseURL,
            "AI_PROVIDER_OPENAI_API_KEY": "sk-harness-provider",
        ]
        values.merge(extra) { _, new in new }
        var logger = Logger(label: "gateway-harness")
        logger.logLevel = .warning
        let plan = try await buildAllInOne(config: PlatformConfiguration.fixed(values), logger: logger, servingHTTP: false)
        guard let router = plan.gatewayRouter else { throw HarnessFailure("the all-in-one plan has no gateway") }
        let group = plan.makeGroup(shutdownSignals: [])
        let running = Task { try await group.run() }
        var failure: (any Error)?
        do {
            try await Application(router: router).test(.router) { http in
                let harness = GatewayHarness(http: http, provider: provider)
                try await harness.waitUntilHealthy()
                try await body(harness)
            }
        } catch {
            failure = error
        }
        await group.triggerGracefulShutdown()
        do {
            try await running.value
        } catch {
            failure = failure ?? error
        }
        await provider.stop()
        if let failure { throw failure }
    }

    /// Ready as a load balancer would see it: the gateway has heard from both services.
    private func waitUntilHealthy() async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while try await send(.get, "/health").status != 200 {
            guard ContinuousClock.now < deadline else { throw HarnessFailure("the platform did not become healthy") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    // MARK: - Requests

    struct Reply: @unchecked Sendable {
        // Holds JSON from JSONSerialization (Any); made and read within one test task.
        let status: Int
        let headers: HTTPFields
        let body: Data

        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
        /// The envelope's `data` object.
        var data: [String: Any] { json["data"] as? [String: Any] ?? [:] }
        /// The envelope's `data` when it is a list.
        var dataList: [[String: Any]] { json["data"] as? [[String: Any]] ?? [] }
        /// The envelope's `message`.
        var message: String { json["message"] as? String ?? "" }
        /// The envelope's `meta` properties (the fields a 422 names).
        var metaProperties: Set<String> {
            Set((json["meta"] as? [[String: Any]] ?? []).compactMap { $0["property"] as? String })
        }
        /// OpenAI's error object on /v1.
        var openAIError: [String: Any] { json["error"] as? [String: Any] ?? [:] }
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// `json` is sent as `application/json`; `body` as it is, with the headers given.
    func send(
        _ method: HTTPRequest.Method, _ path: String, json: String? = nil, body: String? = nil, token: String? = nil,
        headers extra: HTTPFields = [:]
    ) async throws -> Reply {
        var headers = extra
        if let token { headers[.authorization] = "Bearer \(token)" }
        if json != nil { headers[.contentType] = "application/json" }
        let content = (json ?? body).map { ByteBuffer(string: $0) }
        let response = try await http.executeRequest(uri: path, method: method, headers: headers, body: content)
        return Reply(status: response.status.code, headers: response.headers, body: Data(buffer: response.body))
    }

    // MARK: - Flows

    /// Registers `username` and returns its access token.
    func registeredUser(_ username: String) async throws -> String {
        let registered = try await send(.post, "/user/register", json: #"{"username":"\#(username)","password":"password123"}"#)
        guard registered.status == 200 else { throw HarnessFailure("register \(username): \(registered.status) \(registered.message)") }
        return try await token(username, password: "password123")
    }

    func adminToken() async throws -> String {
        try await token(Self.adminUsername, password: Self.adminPassword)
    }

    private func token(_ username: String, password: String) async throws -> String {
        let login = try await send(.put, "/auth/login", json: #"{"username":"\#(username)","password":"\#(password)"}"#)
        guard let token = login.data["accessToken"] as? String else {
            throw HarnessFailure("login of \(username): \(login.status) \(login.message)")
        }
        return token
    }

    /// A new API key of the caller's: its id and the key itself.
    func apiKey(token: String, name: String = "harness", models: [String]? = nil) async throws -> (id: String, key: String) {
        let modelsJSON = models.map { ", \"models\": [" + $0.map { "\"\($0)\"" }.joined(separator: ",") + "]" } ?? ""
        let created = try await send(.post, "/user/api_keys", json: #"{"name":"\#(name)"\#(modelsJSON)}"#, token: token)
        guard let id = created.data["id"] as? String, let key = created.data["key"] as? String else {
            throw HarnessFailure("create key: \(created.status) \(created.message)")
        }
        return (id, key)
    }
}

struct HarnessFailure: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}
