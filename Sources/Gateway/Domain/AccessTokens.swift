import Foundation
import HummingbirdAuth
import JWTKit
import Platform

/// What a verified access token says about its bearer.
public struct Identity: Sendable, Equatable {
    public var userId: String
    public var username: String
    public var role: Role
    public var tokenId: String
    public var issuedAt: Date
    public var expiresAt: Date
    /// The user's security stamp when the token was issued (nil in tokens from before stamps).
    public var securityStamp: Int64?

    public var isAdmin: Bool { role == .admin }
}

extension Identity: RoleProviding {
    /// For hummingbird-auth's `RolePolicy`: an account has one role.
    public var roles: Set<Role> { [role] }
}

/// The claims of an access token (JWT, HS256).
struct AccessTokenClaims: JWTPayload {
    var sub: SubjectClaim
    var name: String
    var role: String
    var jti: IDClaim
    var iat: IssuedAtClaim
    var exp: ExpirationClaim
    /// The user's security stamp at issue (absent from tokens issued before stamps).
    var stamp: Int64?

    func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
    }
}

/// Issues and checks access tokens. A token is refused if its signature, algorithm or expiry is
/// wrong, or if it was revoked (logout, or a change to its user).
public struct AccessTokens: Sendable {
    public let lifetime: TimeInterval
    private let keys: JWTKeyCollection
    private let revocations: RevocationList
    private let verified = RecentlyVerified<String, Identity>()

    public init(secret: String, lifetime: TimeInterval, revocations: RevocationList) async {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        self.keys = keys
        self.lifetime = lifetime
        self.revocations = revocations
    }

    /// `securityStamp`: the user's, as the user service answered it with the account the token
    /// is for (what a change that ends the user's sessions raises).
    public func issue(userId: String, username: String, role: Role, securityStamp: Int64, now: Date = Date()) async throws -> (token: String, identity: Identity) {
        let expiresAt = now.addingTimeInterval(lifetime)
        let claims = AccessTokenClaims(
            sub: SubjectClaim(value: userId), name: username, role: role.rawValue,
            jti: IDClaim(value: SortableID.make(at: now)), iat: IssuedAtClaim(value: now), exp: ExpirationClaim(value: expiresAt),
            stamp: securityStamp
        )
        let token = try await keys.sign(claims)
        return (token, Identity(claims, role: role))
    }

    /// The identity of a valid token, or nil.
    public func verify(_ token: String, now: Date = Date()) async -> Identity? {
        let identity: Identity
        if let known = verified.value(for: token) {
            identity = known
        } else {
            // JWTKit picks the key without looking at `alg`; a token must say what it is.
            guard Self.headerAlgorithm(of: token) == "HS256" else { return nil }
            // A role the platform does not know makes no identity: the token is refused.
            guard let claims = try? await keys.verify(token, as: AccessTokenClaims.self), let known = Identity(claims) else { return nil }
            identity = known
            verified.remember(token, as: identity)
        }
        // Checked on every use, cached or not: the token may have expired or been revoked since.
        guard identity.expiresAt > now, !revocations.isRevoked(identity) else { return nil }
        return identity
    }
}

extension AccessTokens {
    static func headerAlgorithm(of token: String) -> String? {
        guard let header = token.split(separator: ".", maxSplits: 1).first else { return nil }
        var base64 = header.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        return object["alg"] as? String
    }
}

extension Identity {
    init?(_ claims: AccessTokenClaims) {
        guard let role = Role(rawValue: claims.role) else { return nil }
        self.init(claims, role: role)
    }

    init(_ claims: AccessTokenClaims, role: Role) {
        self.init(
            userId: claims.sub.value, username: claims.name, role: role, tokenId: claims.jti.value,
            issuedAt: claims.iat.value, expiresAt: claims.exp.value, securityStamp: claims.stamp
        )
    }
}
