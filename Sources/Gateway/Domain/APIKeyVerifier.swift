import AISaaSProtos
import AKSKSigning
import Foundation
import GRPCCore
import Platform

/// What a verified API key says about its bearer.
public struct VerifiedAPIKey: Sendable, Equatable {
    public var keyId: String
    public var userId: String
    public var role: Role
    /// Empty: every model.
    public var models: [String]
    public var expiresAt: Date?
    /// When the user service vouched for it, by its clock.
    var verifiedAt: Date
    /// The owner's security stamp the user service read then (0: none recorded).
    var ownerStamp: Int64 = 0
    /// When this replica asked.
    var checked: ContinuousClock.Instant
}

/// Checks `sk-…` keys with the user service, which keeps their SHA-256, and remembers the answer
/// for `freshness`, so a busy app's requests cost no service call. A remembered key is refused
/// at once when it is revoked (here, or on another replica within the revocation interval) or
/// expires. When its owner's account changed since (disabled, deleted, a new role or password:
/// a user-wide revocation), the user service is asked again: it refuses a disabled or deleted
/// owner's keys and gives the new role, and the keys of an owner who only changed password, or
/// was enabled again, go on working as the list of keys shows them. After `freshness` a key is
/// asked for again anyway (which also keeps `lastUsedAt` within a minute of the truth).
public final class APIKeyVerifier: Sendable {
    private let users: any Grpc_User_V1_UserService.ClientProtocol
    private let revocations: RevocationList
    private let freshness: Duration
    private let verified = RecentlyVerified<String, VerifiedAPIKey>()

    public init(users: any Grpc_User_V1_UserService.ClientProtocol, revocations: RevocationList, freshness: Duration = .seconds(60)) {
        self.users = users
        self.revocations = revocations
        self.freshness = freshness
    }

    static let refused = APIError.unauthenticated("Incorrect API key provided: it is invalid, expired or revoked.").with(reason: .invalidApiKey)

    public func verify(_ key: String, now: Date = Date()) async throws -> VerifiedAPIKey {
        guard key.hasPrefix("sk-"), (20...200).contains(key.utf8.count) else { throw Self.refused }
        let hash = CCAuthV1.sha256Hex(Array(key.utf8))
        if let known = verified.value(for: hash), ContinuousClock.now - known.checked < freshness {
            switch standing(known, now: now) {
            case .usable: return known
            case .refused: throw Self.refused
            case .ownerChanged: break
            }
        }
        let answer: Grpc_User_V1_VerifiedApiKey
        do {
            answer = try await retryingWhenUnavailable { try await users.verifyApiKey(.with { $0.keySha256 = hash }) }
        } catch let error as RPCError where error.code == .unauthenticated || error.code == .notFound {
            throw Self.refused
        }
        let fresh = VerifiedAPIKey(
            keyId: answer.key.id, userId: answer.user.id, role: answer.user.role.platformRole,
            models: answer.key.models, expiresAt: answer.key.hasExpiresAt ? Date(millisecondsSince1970: answer.key.expiresAt) : nil,
            verifiedAt: Date(millisecondsSince1970: answer.serverTime), ownerStamp: answer.user.securityStamp, checked: .now
        )
        verified.remember(hash, as: fresh)
        guard standing(fresh, now: now) == .usable else { throw Self.refused }
        return fresh
    }

    /// Drops what this replica remembers of a key (revoked here).
    func forget(keyId: String) {
        verified.forget { $0.keyId == keyId }
    }

    private enum Standing { case usable, refused, ownerChanged }

    private func standing(_ key: VerifiedAPIKey, now: Date) -> Standing {
        if let expiresAt = key.expiresAt, expiresAt <= now { return .refused }
        switch revocations.revocation(ofAPIKey: key.keyId, userId: key.userId, verifiedAt: key.verifiedAt, ownerStamp: key.ownerStamp) {
        case nil: return .usable
        case .key: return .refused
        case .owner: return .ownerChanged
        }
    }
}
