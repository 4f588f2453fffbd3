import AISaaSProtos
import Foundation
import GRPCCore
import GRPCInProcessTransport
import Hummingbird
import Logging
import Platform
import Testing
@testable import Gateway

@Suite("OpenAPI document")
struct OpenAPIDocumentTests {
    @Test("the served routes and the documented routes are the same set")
    func routesMatchDocument() async throws {
        let router = try await makeTestRouter()
        let served = Set(router.routes.filter { $0.method != .head }.map { "\($0.method.rawValue) \($0.path.description)" })

        let document = try #require(try JSONSerialization.jsonObject(with: OpenAPIDocument.data()) as? [String: Any])
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        let methods: Set<String> = ["get", "put", "post", "delete", "patch", "options", "head"]
        let documented = Set(paths.flatMap { path, operations in
            operations.keys.filter { methods.contains($0) }.map { "\($0.uppercased()) \(path)" }
        })
        #expect(served == documented, "only served: \(served.subtracting(documented)); only documented: \(documented.subtracting(served))")
    }

    @Test("every operation documents its error answers with the error body")
    func errorsDocumented() throws {
        let document = try #require(try JSONSerialization.jsonObject(with: OpenAPIDocument.data()) as? [String: Any])
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        for (path, operations) in paths {
            for (method, operation) in operations {
                guard let operation = operation as? [String: Any], let responses = operation["responses"] as? [String: Any] else { continue }
                #expect(responses.keys.contains { $0.hasPrefix("4") || $0.hasPrefix("5") }, "\(method) \(path) documents no error")
            }
        }
        let schemas = try #require((document["components"] as? [String: Any])?["schemas"] as? [String: Any])
        #expect(schemas.keys.contains("ErrorBody"))
    }
}

/// The gateway's router over service clients that are never called.
func makeTestRouter() async throws -> Router<GatewayRequestContext> {
    let transport = InProcessTransport()
    let client = GRPCClient(transport: transport.client)
    let clients = ServiceClients(
        users: Grpc_User_V1_UserService.Client(wrapping: client),
        chatModels: Grpc_Ai_V1_AiChatModelService.Client(wrapping: client),
        speech: Grpc_Ai_V1_AiSpeechService.Client(wrapping: client),
        usage: Grpc_Ai_V1_AiUsageService.Client(wrapping: client)
    )
    let revocations = RevocationList()
    let tokens = await AccessTokens(secret: String(repeating: "s", count: 40), lifetime: 3600, revocations: revocations)
    let settings = GatewaySettings(
        listen: HostPort(host: "127.0.0.1", port: 0), jwtSecret: String(repeating: "s", count: 40), tokenLifetime: 3600,
        corsOrigins: [], loginLimits: .init(), trustForwardedFor: false, revocationPollInterval: .seconds(1),
        callTimeout: .seconds(1), aiCallTimeout: .seconds(1), signing: SignaturePolicy(),
        userServiceAddresses: [], aiServiceAddresses: []
    )
    return makeGatewayRouter(
        settings: settings, clients: clients, tokens: tokens, revocations: revocations,
        sync: RevocationSync(users: clients.users, revocations: revocations), serviceEndpoints: [], logger: Logger(label: "test")
    )
}
