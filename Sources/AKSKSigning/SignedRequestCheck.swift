import Foundation

/// How a server checks cc-auth-v1 signed requests. There is deliberately no switch that skips the
/// time checks (aksk-v1.md: such a switch must never be on by default).
public struct SignaturePolicy: Sendable, Equatable {
    /// How far in the future a signature's timestamp may be (the gateway's AKSK_CLOCK_SKEW_SECONDS).
    public var clockSkewSeconds: Int
    /// Whether every signed request must carry a signed `x-cc-nonce` (the gateway's AKSK_REQUIRE_NONCE).
    public var requireNonce: Bool
    /// The longest expiration period accepted; it also bounds how long a nonce is remembered.
    public var maxExpirationSeconds: Int

    public init(clockSkewSeconds: Int = 300, requireNonce: Bool = false, maxExpirationSeconds: Int = 7 * 86_400) {
        self.clockSkewSeconds = clockSkewSeconds
        self.requireNonce = requireNonce
        self.maxExpirationSeconds = maxExpirationSeconds
    }
}

/// What remains to check with the secret key, once every check that needs no secret passed: the
/// signature of `canonicalRequest` under the key derived for `authStringPrefix`
/// (`CCAuthV1.verify`), and that the nonce, if any, was not seen before `expiresAt`.
public struct SignatureVerification: Sendable, Equatable {
    public var accessKey: String
    public var authStringPrefix: String
    public var canonicalRequest: String
    public var signature: String
    /// The signed `x-cc-nonce`, if any.
    public var nonce: String?
    /// When the signature expires (timestamp + expiration): the nonce is remembered until then.
    public var expiresAt: Date

    public init(accessKey: String, authStringPrefix: String, canonicalRequest: String, signature: String, nonce: String?, expiresAt: Date) {
        self.accessKey = accessKey
        self.authStringPrefix = authStringPrefix
        self.canonicalRequest = canonicalRequest
        self.signature = signature
        self.nonce = nonce
        self.expiresAt = expiresAt
    }
}

/// A signed request refused: `message` and `status` are those of the aksk-v1.md error table (plus
/// ContentDigestMismatch and InvalidNonce); `detail` says why, for the log. Nothing here is secret.
public struct SignedRequestRejection: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var status: Int
    public var detail: String

    public init(_ message: String, _ status: Int, _ detail: String) {
        self.message = message
        self.status = status
        self.detail = detail
    }

    public var description: String { "\(status) \(message): \(detail)" }

    static func invalidHeader(_ detail: String) -> Self { Self("InvalidHTTPAuthHeader", 400, detail) }
    static func mismatch(_ detail: String) -> Self { Self("SignatureDoesNotMatch", 400, detail) }
    static func expired(_ detail: String) -> Self { Self("RequestExpired", 400, detail) }
    static func invalidNonce(_ detail: String) -> Self { Self("InvalidNonce", 400, detail) }
}

/// The checks of a cc-auth-v1 signed request that need no secret key (aksk-v1.md), and the
/// canonical request to verify the signature of: what a server does before it looks up the
/// secret. Pure: no HTTP types, no clock. Shared by the gateway and any server that verifies.
public enum SignedRequestCheck {
    /// A nonce is 8 to 64 of these characters (covers hex, UUIDs, base64 and base64url).
    public static let nonceLength = 8...64
    static let nonceCharacters = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~+/=".utf8)

    /// Checks a request and returns what VerifySignature needs.
    ///
    /// - `path`: the request path as received (percent-encoded or not: both canonicalize alike).
    /// - `rawQuery`: the query string as received, without `?`; nil or empty for none.
    /// - `headers`: every request header, names in any case, repeated headers as separate entries.
    ///
    /// A signed `x-cc-content-sha256` is checked against the body by `verifyContentDigest`, once
    /// the body is read: a server checks the signature first, so that no unauthenticated caller
    /// makes it hold a large body.
    ///
    /// Decisions beyond the document: `host` missing from signedHeaders, an empty or repeated
    /// name in it, or two `x-authorization` headers are InvalidHTTPAuthHeader; a signed header
    /// absent from the request, or a signature that is not 64 lower-case hex characters, is
    /// SignatureDoesNotMatch without asking the user service; an expiration above
    /// `maxExpirationSeconds` is RequestExpired; an `x-cc-nonce` that is not signed is InvalidNonce.
    public static func check(
        method: String,
        path: String,
        rawQuery: String?,
        headers: [(name: String, value: String)],
        now: Date,
        policy: SignaturePolicy
    ) throws(SignedRequestRejection) -> SignatureVerification {
        let text = try authorizationText(headers: headers, rawQuery: rawQuery)
        let parts: AuthorizationString
        do {
            parts = try AuthorizationString(parsing: text)
        } catch {
            throw .invalidHeader("x-authorization must have six '/'-separated parts")
        }
        guard parts.version == CCAuthV1.version else {
            throw SignedRequestRejection("InvalidVersion", 404, "the version is not \(CCAuthV1.version)")
        }
        guard CCAuthV1.isAccessKey(parts.accessKey) else {
            throw SignedRequestRejection("InvalidAccessKeyId", 403, "the access key is not 20 characters of [A-Za-z0-9_]")
        }
        guard let signedAt = CCAuthTimestamp.parse(parts.timestamp) else {
            throw SignedRequestRejection("InvalidTimestamp", 400, "the timestamp is not yyyy-mm-ddThh:mm:ss[.SSS]Z")
        }
        guard let expiration = CCAuthV1.expirationSeconds(parts.expiration) else {
            throw .expired("the expiration is not a positive integer")
        }
        guard expiration <= policy.maxExpirationSeconds else {
            throw .expired("the expiration is longer than \(policy.maxExpirationSeconds) seconds")
        }
        let signedHeaders = parts.signedHeaders
        // The protocol lists the names lower-cased: a signer that does otherwise signs something else.
        guard signedHeaders.allSatisfy({ !$0.utf8.contains { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") } }) else {
            throw .invalidHeader("signedHeaders must be lower-case names")
        }
        guard !signedHeaders.contains(""), Set(signedHeaders).count == signedHeaders.count else {
            throw .invalidHeader("signedHeaders has an empty or repeated name")
        }
        guard signedHeaders.contains("host") else { throw .invalidHeader("signedHeaders must include host") }
        guard CCAuthV1.isSignature(parts.signature) else {
            throw .mismatch("the signature is not 64 lower-case hex characters")
        }
        guard signedAt.timeIntervalSince(now) <= TimeInterval(policy.clockSkewSeconds) else {
            throw .expired("the timestamp is in the future")
        }
        let expiresAt = signedAt.addingTimeInterval(TimeInterval(expiration))
        guard now <= expiresAt else { throw .expired("the signature has expired") }

        let signed: [(name: String, value: String)]
        do {
            signed = try CCAuthV1.selectSignedHeaders(signedHeaders, from: headers)
        } catch .missingSignedHeader(let name) {
            throw .mismatch("signed header '\(name)' is not in the request")
        } catch {
            throw .invalidHeader("\(error)")
        }
        let nonce = try checkNonce(signed: signed, headers: headers, required: policy.requireNonce)

        return SignatureVerification(
            accessKey: parts.accessKey,
            authStringPrefix: parts.authStringPrefix,
            canonicalRequest: CCAuthV1.canonicalRequest(method: method, path: path, rawQuery: rawQuery, headers: signed),
            signature: parts.signature,
            nonce: nonce,
            expiresAt: expiresAt
        )
    }

    /// The `x-authorization` header, or else the first `x-authorization` query item (decoded).
    static func authorizationText(headers: [(name: String, value: String)], rawQuery: String?) throws(SignedRequestRejection) -> String {
        let fromHeaders = values(of: CCAuthV1.authorizationHeader, in: headers)
        guard fromHeaders.count <= 1 else { throw .invalidHeader("x-authorization is given more than once") }
        if let header = fromHeaders.first { return header }
        for item in (rawQuery ?? "").split(separator: "&") {
            let key = item.prefix { $0 != "=" }
            guard CCAuthV1.percentDecode(key, plusAsSpace: true).elementsEqual(CCAuthV1.authorizationHeader.utf8) else { continue }
            let value = item.dropFirst(key.count + 1)
            return String(decoding: CCAuthV1.percentDecode(value, plusAsSpace: true), as: UTF8.self)
        }
        throw .invalidHeader("no x-authorization header or query item")
    }

    /// Every `x-cc-content-sha256` of the request matches `body` (nothing to check without one).
    public static func verifyContentDigest(headers: [(name: String, value: String)], body: some Sequence<UInt8>) throws(SignedRequestRejection) {
        let claimed = values(of: CCAuthV1.contentSHA256Header, in: headers)
        guard !claimed.isEmpty else { return }
        let actual = CCAuthV1.sha256Hex(Array(body))
        for value in claimed where value.lowercased() != actual {
            throw SignedRequestRejection("ContentDigestMismatch", 400, "x-cc-content-sha256 does not match the body")
        }
    }

    private static func checkNonce(
        signed: [(name: String, value: String)], headers: [(name: String, value: String)], required: Bool
    ) throws(SignedRequestRejection) -> String? {
        guard let nonce = signed.first(where: { $0.name == CCAuthV1.nonceHeader }).map({ CCAuthV1.trimmed($0.value) }) else {
            if !values(of: CCAuthV1.nonceHeader, in: headers).isEmpty { throw .invalidNonce("x-cc-nonce must be signed") }
            if required { throw .invalidNonce("a signed x-cc-nonce is required") }
            return nil
        }
        guard nonceLength.contains(nonce.utf8.count), nonce.utf8.allSatisfy(nonceCharacters.contains) else {
            throw .invalidNonce("x-cc-nonce must be 8 to 64 characters of [A-Za-z0-9-_.~+/=]")
        }
        return nonce
    }

    /// The trimmed values of every header with this (lower-case) name.
    private static func values(of name: String, in headers: [(name: String, value: String)]) -> [String] {
        headers.filter { CCAuthV1.headerName($0.name, is: name) }.map { CCAuthV1.trimmed($0.value) }
    }
}
