import Foundation

/// A key for the OpenAI-compatible API. The key itself is shown once, when it is made; the
/// service keeps its SHA-256 only.
public struct ApiKey: Sendable, Equatable {
    public var id: String
    public var userId: String
    public var name: String
    /// The key's first characters, to tell keys apart in a list.
    public var prefix: String
    /// The models the key may use; empty: every model.
    public var models: [String]
    public var createdAt: Date
    public var lastUsedAt: Date?
    public var expiresAt: Date?

    public init(id: String, userId: String, name: String, prefix: String, models: [String], createdAt: Date, lastUsedAt: Date? = nil, expiresAt: Date? = nil) {
        self.id = id
        self.userId = userId
        self.name = name
        self.prefix = prefix
        self.models = models
        self.createdAt = createdAt
        self.lastUsedAt = lastUsedAt
        self.expiresAt = expiresAt
    }
}

/// A key just made, with its text (the only time it is known).
public struct ApiKeyWithSecret: Sendable, Equatable {
    public var key: ApiKey
    public var secret: String
}

/// Storage of API keys. Revoked keys are never returned.
public protocol ApiKeyRepository: Sendable {
    func insert(_ key: ApiKey, hash: String) async throws
    /// The user's keys, newest first.
    func list(userId: String) async throws -> [ApiKey]
    func find(hash: String) async throws -> ApiKey?
    func find(id: String) async throws -> ApiKey?
    /// Marks the key revoked and records the revocation, in one transaction; false if there was
    /// no such key.
    func revoke(id: String, at date: Date, recording revocation: Revocation) async throws -> Bool
    func markUsed(id: String, at date: Date) async throws
}
