import AISaaSProtos
import AKSKSigning
import Foundation
import GRPCCore
import Platform

/// The owner of an access key, as the user service named it when it checked a signature.
public struct SignatureOwner: Sendable, Equatable {
    public var userId: String
    public var role: Role
}

/// Checks cc-auth-v1 signatures. The first request of an authorization prefix
/// (`cc-auth-v1/AK/timestamp/expiration`) goes to the user service, which alone can open the
/// secret key; it answers the prefix's derived signing key (`HMAC(SK, prefix)`, never the SK),
/// kept here until the prefix expires, so a device's further requests with that prefix are checked
/// without a service call. A nonce is still recorded by the user service on every request, so
/// replays are refused across replicas.
///
/// A kept key is used only while this replica's revocation list is fresh and holds nothing newer
/// for the access key (rotated or replaced secret) or its owner (disabled, deleted, role or
/// password changed); otherwise the user service is asked again. A signature the kept key does not
/// match also goes to the service, whose answer is the one the client gets.
public final class SignatureVerifier: Sendable {
    private struct KeptKey: Sendable {
        var signingKey: String
        var accessKey: String
        var owner: SignatureOwner
        /// By the user service's clock, a little before it derived the key (revocations compare with it).
        var derivedAt: Date
        var expiresAt: Date
    }

    private let users: any Grpc_User_V1_UserService.ClientProtocol
    private let revocations: RevocationList
    private let maxRevocationAge: Duration
    private let kept: RecentlyVerified<String, KeptKey>

    public init(
        users: any Grpc_User_V1_UserService.ClientProtocol, revocations: RevocationList,
        maxRevocationAge: Duration = .seconds(5), capacity: Int = 20_000
    ) {
        self.users = users
        self.revocations = revocations
        self.maxRevocationAge = maxRevocationAge
        self.kept = RecentlyVerified(capacity: capacity)
    }

    /// The number of signing keys kept (for tests).
    var keptCount: Int { kept.count }

    /// The key's owner, or the user service's refusal (an `RPCError` with its reason).
    public func verify(_ verification: SignatureVerification, now: Date = Date()) async throws -> SignatureOwner {
        if let key = usableKey(for: verification, now: now),
           CCAuthV1.constantTimeEquals(CCAuthV1.signature(signingKey: key.signingKey, canonicalRequest: verification.canonicalRequest), verification.signature) {
            if let nonce = verification.nonce {
                _ = try await users.recordNonce(.with {
                    $0.accessKey = verification.accessKey
                    $0.nonce = nonce
                    $0.expiresAt = verification.expiresAt.millisecondsSince1970
                })
            }
            return key.owner
        }
        // Revocations recorded from here on void the key: its derivation is dated a second early.
        let askedAt = revocations.serviceNow().addingTimeInterval(-1)
        let answer = try await users.verifySignatureForKey(verification.request)
        let owner = SignatureOwner(userId: answer.user.id, role: answer.user.role.platformRole)
        if !answer.signingKey.isEmpty {
            kept.remember(verification.authStringPrefix, as: KeptKey(
                signingKey: answer.signingKey, accessKey: verification.accessKey, owner: owner, derivedAt: askedAt,
                expiresAt: Date(millisecondsSince1970: answer.signingKeyExpiresAt)
            ))
        }
        return owner
    }

    private func usableKey(for verification: SignatureVerification, now: Date) -> KeptKey? {
        guard let key = kept.value(for: verification.authStringPrefix), key.accessKey == verification.accessKey,
              key.expiresAt > now, !revocations.isStale(maxAge: maxRevocationAge),
              !revocations.isRevoked(signingKeyOf: key.accessKey, userId: key.owner.userId, derivedAt: key.derivedAt)
        else { return nil }
        return key
    }
}
