import AISaaSProtos
import AKSKSigning
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
        let served = Set(router.routes.map { "\($0.method.rawValue) \($0.path.description)" })

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
    let revocations = RevocationList()
    let tokens = await AccessTokens(secret: testJWTSecret, lifetime: 3600, revocations: revocations)
    return try makeTestRouter(over: GRPCClient(transport: InProcessTransport().client), tokens: tokens, revocations: revocations)
}

let testJWTSecret = String(repeating: "s", count: 40)

/// The gateway's router with every service client on `client`, and test settings.
func makeTestRouter<Transport: ClientTransport>(
    over client: GRPCClient<Transport>, tokens: AccessTokens, revocations: RevocationList, logger: Logger = Logger(label: "test")
) throws -> Router<GatewayRequestContext> {
    let users = Grpc_User_V1_UserService.Client(wrapping: client)
    let clients = ServiceClients(
        users: users,
        chatModels: Grpc_Ai_V1_AiChatModelService.Client(wrapping: client),
        speech: Grpc_Ai_V1_AiSpeechService.Client(wrapping: client),
        usage: Grpc_Ai_V1_AiUsageService.Client(wrapping: client),
        openAI: Grpc_Ai_V1_AiOpenAIService.Client(wrapping: client)
    )
    let settings = GatewaySettings(
        listen: HostPort(host: "127.0.0.1", port: 0), jwtSecret: testJWTSecret, tokenLifetime: 3600,
        corsOrigins: [], loginLimits: .init(), trustForwardedFor: false, revocationPollInterval: .seconds(60),
        callTimeout: .seconds(5), aiCallTimeout: .seconds(5), signing: SignaturePolicy(),
        userServiceAddresses: [], aiServiceAddresses: []
    )
    return try makeGatewayRouter(
        settings: settings, clients: clients, tokens: tokens, revocations: revocations,
        sync: RevocationSync(users: users, revocations: revocations), healthMonitors: [], logger: logger
    )
}
