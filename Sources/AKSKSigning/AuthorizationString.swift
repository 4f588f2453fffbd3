/// The six parts of `cc-auth-v1/{accessKey}/{timestamp}/{expirationPeriodInSeconds}/{signedHeaders}/{signature}`,
/// as written: parsing only splits, so a verifier can report each bad part with its own error.
public struct AuthorizationString: Sendable, Equatable, CustomStringConvertible {
    public var version: String
    public var accessKey: String
    public var timestamp: String
    /// The expiration period exactly as written; `CCAuthV1.expirationSeconds` reads it.
    public var expiration: String
    /// The signed header names as written, in the order written (verifiers accept any order).
    public var signedHeaders: [String]
    public var signature: String

    public init(version: String = CCAuthV1.version, accessKey: String, timestamp: String, expiration: String, signedHeaders: [String], signature: String) {
        self.version = version
        self.accessKey = accessKey
        self.timestamp = timestamp
        self.expiration = expiration
        self.signedHeaders = signedHeaders
        self.signature = signature
    }

    /// Splits an authorization string on `/`. Throws `.malformedAuthorization` unless there are
    /// exactly six parts; signed header names are split on `;` (an empty name stays empty).
    public init(parsing text: String) throws(CCAuthV1Error) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 6 else { throw .malformedAuthorization }
        self.init(
            version: String(parts[0]), accessKey: String(parts[1]), timestamp: String(parts[2]),
            expiration: String(parts[3]),
            signedHeaders: parts[4].split(separator: ";", omittingEmptySubsequences: false).map(String.init),
            signature: String(parts[5])
        )
    }

    /// `cc-auth-v1/{accessKey}/{timestamp}/{expiration}`: the message of the signing key.
    public var authStringPrefix: String {
        [version, accessKey, timestamp, expiration].joined(separator: "/")
    }

    /// The authorization string, for the `x-authorization` header.
    public var description: String {
        [authStringPrefix, signedHeaders.joined(separator: ";"), signature].joined(separator: "/")
    }
}
