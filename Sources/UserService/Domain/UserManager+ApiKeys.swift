import AKSKSigning
import Foundation
import Platform

extension UserManager {
    public static let apiKeyNameLength = 1...100
    public static let maxApiKeyModels = 50
    public static let maxApiKeysPerUser = 100
    /// `sk-` and 48 characters of [A-Za-z0-9]: 285 bits, so a hash without salt or stretching is
    /// all a stored key needs.
    static let apiKeyRandomLength = 48
    static let apiKeyPrefixLength = 12
    /// `lastUsedAt` is written at most this often per key.
    static let apiKeyUseResolution: TimeInterval = 60

    /// The SHA-256 of a key's text, as lower-case hex: what is stored, and what gateways send.
    public static func apiKeyHash(_ key: String) -> String {
        CCAuthV1.sha256Hex(Array(key.utf8))
    }

    public func createApiKey(userId: String, name: String, expiresAt: Date?, models: [String]) async throws -> ApiKeyWithSecret {
        guard let keys = apiKeys else { throw Self.apiKeysUnavailable }
        var violations = Violations()
        violations.checkLength("name", name, Self.apiKeyNameLength)
        violations.checkDisplayName("name", name)
        let date = now()
        if let expiresAt, expiresAt <= date { violations.add("expiresAt", "expiresAt must be in the future") }
        if models.count > Self.maxApiKeyModels { violations.add("models", "models must have at most \(Self.maxApiKeyModels) items") }
        for (index, model) in models.enumerated() where model.isEmpty || model.unicodeScalars.count > 200 {
            violations.add("models[\(index)]", "models[\(index)] must be 1 to 200 characters long")
        }
        try violations.throwIfAny()
        let owner = try await user(id: userId)
        guard try await keys.list(userId: owner.id).count < Self.maxApiKeysPerUser else {
            throw DomainError(.failedPrecondition, "a user may have at most \(Self.maxApiKeysPerUser) API keys; revoke one first")
        }
        let secret = "sk-" + RandomText.alphanumeric(Self.apiKeyRandomLength)
        let key = ApiKey(
            id: SortableID.make(at: date), userId: owner.id, name: name, prefix: String(secret.prefix(Self.apiKeyPrefixLength)),
            models: Array(NSOrderedSet(array: models).compactMap { $0 as? String }), createdAt: date, expiresAt: expiresAt
        )
        try await keys.insert(key, hash: Self.apiKeyHash(secret))
        return ApiKeyWithSecret(key: key, secret: secret)
    }

    public func apiKeys(userId: String) async throws -> [ApiKey] {
        guard let keys = apiKeys else { throw Self.apiKeysUnavailable }
        return try await keys.list(userId: userId)
    }

    /// Revokes one of `ownerId`'s keys (any user's for nil, the admin's case); the gateways learn
    /// it from the revocation list.
    public func revokeApiKey(id: String, ownerId: String?) async throws {
        guard let keys = apiKeys else { throw Self.apiKeysUnavailable }
        guard let key = try await keys.find(id: id), ownerId == nil || key.userId == ownerId else {
            throw DomainError.notFound("no API key with id \(id.quotedForMessage)")
        }
        let date = now()
        let revocation = Revocation(
            kind: .apiKey, subject: key.id, notBefore: date,
            expiresAt: key.expiresAt ?? date.addingTimeInterval(Self.userRevocationLifetime), createdAt: date
        )
        guard try await keys.revoke(id: key.id, at: date, recording: revocation) else {
            throw DomainError.notFound("no API key with id \(id.quotedForMessage)")
        }
    }

    /// The key with this hash and its owner, if the key is in force and its owner enabled.
    /// Every refusal looks alike, so keys cannot be probed.
    public func verifyApiKey(hash: String) async throws -> (key: ApiKey, user: User) {
        guard let keys = apiKeys else { throw Self.apiKeysUnavailable }
        let invalid = DomainError(.unauthenticated, "invalid, expired or revoked API key", reason: ErrorReason.invalidApiKey.rawValue)
        let date = now()
        guard hash.utf8.count == 64, var key = try await keys.find(hash: hash) else { throw invalid }
        if let expiresAt = key.expiresAt, expiresAt <= date { throw invalid }
        guard let owner = try await repository.find(id: key.userId), owner.user.status == .enabled else { throw invalid }
        if key.lastUsedAt.map({ date.timeIntervalSince($0) >= Self.apiKeyUseResolution }) ?? true {
            // Bookkeeping only: a failed write must not refuse a valid key.
            try? await keys.markUsed(id: key.id, at: date)
            key.lastUsedAt = date
        }
        return (key, owner.user)
    }

    static let apiKeysUnavailable = DomainError(.unavailable, "API keys are not set up in this user service")
}
