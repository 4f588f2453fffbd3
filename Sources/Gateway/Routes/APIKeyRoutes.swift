import AISaaSProtos
import Foundation
import GRPCCore
import Hummingbird
import Platform

/// `/user/api_keys`: the caller's keys for the OpenAI-compatible API (JWT). Admins list and
/// revoke anyone's with `?userId=`.
struct APIKeyRoutes {
    let users: any Grpc_User_V1_UserService.ClientProtocol
    let revocations: RevocationList
    let apiKeys: APIKeyVerifier

    func register(on authenticated: RouterGroup<GatewayRequestContext>) {
        authenticated.post("/user/api_keys", use: create)
        authenticated.get("/user/api_keys", use: list)
        authenticated.delete("/user/api_keys/{id}", use: revoke)
    }

    /// `{name, expiresAt?, models?}` → the key, shown this once.
    @Sendable func create(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        var body = try await JSONBody.read(request, context: context)
        let name = body.string("name", required: true, length: 1...100)
        let expiresAt = body.integer("expiresAt", range: 0...253_402_300_799_999)
        let models = body.strings("models", maxCount: 50, length: 1...200)
        try body.finish()
        let created = try await users.createApiKey(.with {
            $0.userID = identity.userId
            $0.name = name ?? ""
            if let expiresAt { $0.expiresAt = Double(expiresAt) }
            $0.models = models ?? []
        })
        return try ResponseBody.success(APIKeyView(created.key, secret: created.secret))
    }

    @Sendable func list(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let userId = try subject(request, context)
        let keys = try await retryingWhenUnavailable { try await users.listApiKeys(.with { $0.userID = userId }) }
        return try ResponseBody.success(keys.results.map { APIKeyView($0, secret: nil) })
    }

    @Sendable func revoke(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let id = try Identifier.path("id", context, notFound: "API key")
        _ = try await users.revokeApiKey(.with {
            $0.id = id
            // An admin revokes whoever's key it is; a user only their own.
            $0.userID = identity.isAdmin ? "" : identity.userId
        })
        // This replica refuses the key at once; the others learn it from their next poll.
        revocations.add([.apiKey(id: id, expiresAt: Date().addingTimeInterval(400 * 86_400))])
        apiKeys.forget(keyId: id)
        return try ResponseBody.empty()
    }

    /// The caller, or for an admin the `userId` of the query.
    private func subject(_ request: Request, _ context: GatewayRequestContext) throws -> String {
        let identity = try context.requireIdentity()
        guard let asked = request.uri.queryParameters["userId"].map(String.init), !asked.isEmpty, asked != identity.userId else {
            return identity.userId
        }
        guard identity.isAdmin else { throw APIError.forbidden("only admins may see other users' API keys") }
        return try Identifier.require(asked, notFound: "user")
    }
}

/// An API key as the HTTP API shows it; `key` only in the answer that creates it.
struct APIKeyView: Encodable {
    let id: String
    let name: String
    let key: String?
    let prefix: String
    let models: [String]
    let createdAt: Int64
    let lastUsedAt: Int64?
    let expiresAt: Int64?

    init(_ key: Grpc_User_V1_ApiKey, secret: String?) {
        id = key.id
        name = key.name
        self.key = secret
        prefix = key.prefix
        models = key.models
        createdAt = Int64(key.createdAt)
        lastUsedAt = key.hasLastUsedAt ? Int64(key.lastUsedAt) : nil
        expiresAt = key.hasExpiresAt ? Int64(key.expiresAt) : nil
    }

    enum CodingKeys: String, CodingKey { case id, name, key, prefix, models, createdAt, lastUsedAt, expiresAt }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(name, forKey: .name)
        try container.encodeIfPresent(key, forKey: .key)
        try container.encode(prefix, forKey: .prefix)
        try container.encode(models, forKey: .models)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(lastUsedAt, forKey: .lastUsedAt)
        try container.encode(expiresAt, forKey: .expiresAt)
    }
}
