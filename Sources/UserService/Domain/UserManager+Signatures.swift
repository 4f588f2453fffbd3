import AKSKSigning
import Foundation
import Platform

extension UserManager {
    /// Longest nonce stored; the gateway allows 8 to 64 characters.
    public static let nonceMaxLength = 64
    /// About one successful nonce record in this many also deletes every expired nonce, which
    /// keeps the table to the nonces in force without a background job on each replica.
    static let noncePurgeOdds = 32

    /// Checks a signature made with the secret key of `check.accessKey` and returns its owner.
    /// Then, if the request carries a nonce, records it so that a second use is refused by every
    /// replica. The reasons are the `message`s of aksk-v1.md, for the gateway to map.
    ///
    /// Like `verifyPassword`, an account's status is told only to a caller who proved the key:
    /// the signature is checked before "disabled" is reported, and a nonce is recorded only once
    /// both passed.
    public func verifySignature(_ check: SignatureVerification) async throws -> User {
        try await verifySignatureAndDeriveKey(check).user
    }

    /// `verifySignature`, answering also the signing key of the request's prefix
    /// (`HMAC_HEX(SK, authStringPrefix)`): a gateway that keeps it checks further requests with
    /// the same prefix itself, until the prefix expires. The SK itself never leaves.
    public func verifySignatureAndDeriveKey(_ check: SignatureVerification) async throws -> (user: User, signingKey: String) {
        guard CCAuthV1.isAccessKey(check.accessKey), let stored = try await repository.find(accessKey: check.accessKey) else {
            throw DomainError(.notFound, "InvalidAccessKeyId", reason: ErrorReason.invalidAccessKeyId.rawValue)
        }
        // The prefix is the signing key's message: it must name the key whose secret signs it.
        guard check.authStringPrefix.hasPrefix(CCAuthV1.version + "/" + check.accessKey + "/") else {
            throw DomainError(.invalidArgument, "authStringPrefix does not belong to accessKey")
        }
        if let nonce = check.nonce, nonce.isEmpty || nonce.utf8.count > Self.nonceMaxLength {
            throw DomainError(.invalidArgument, "InvalidNonce", reason: ErrorReason.invalidNonce.rawValue)
        }
        let secretKey = try cipher.open(stored.sealedSecretKey, userId: stored.user.id)
        let signingKey = CCAuthV1.signingKey(secretKey: secretKey, authStringPrefix: check.authStringPrefix)
        let expected = CCAuthV1.signature(signingKey: signingKey, canonicalRequest: check.canonicalRequest)
        guard CCAuthV1.constantTimeEquals(expected, check.signature) else {
            throw DomainError(.unauthenticated, "SignatureDoesNotMatch", reason: ErrorReason.signatureDoesNotMatch.rawValue)
        }
        guard stored.user.status == .enabled else {
            throw DomainError(.permissionDenied, "AccessDenied", reason: ErrorReason.accessDenied.rawValue)
        }
        if let nonce = check.nonce {
            try await recordNonce(accessKey: check.accessKey, nonce: nonce, expiresAt: check.expiresAt)
        }
        return (stored.user, signingKey)
    }

    /// The largest `AKSK_CLOCK_SKEW_SECONDS` a gateway takes.
    static let nonceRetentionMargin: TimeInterval = 3_600

    /// Records that `nonce` was used with `accessKey` until `expiresAt`; `NonceReused` if it was
    /// seen before. For requests a gateway verified with a signing key it keeps.
    public func recordNonce(accessKey: String, nonce: String, expiresAt: Date) async throws {
        guard CCAuthV1.isAccessKey(accessKey), !nonce.isEmpty, nonce.utf8.count <= Self.nonceMaxLength else {
            throw DomainError(.invalidArgument, "InvalidNonce", reason: ErrorReason.invalidNonce.rawValue)
        }
        let date = now()
        // Kept past the signature's expiry by the largest clock skew a gateway may allow: a
        // gateway whose clock runs behind this one still takes the signature for that long, and
        // must still find its nonce.
        let keptUntil = expiresAt.addingTimeInterval(Self.nonceRetentionMargin)
        guard try await repository.recordNonce(accessKey: accessKey, nonce: nonce, expiresAt: keptUntil, now: date) else {
            throw DomainError(.alreadyExists, "NonceReused", reason: ErrorReason.nonceReused.rawValue)
        }
        if Int.random(in: 0..<Self.noncePurgeOdds) == 0 {
            // Housekeeping only: the request has been verified and must not fail for it.
            try? await repository.deleteNonces(expiredBefore: date)
        }
    }
}
