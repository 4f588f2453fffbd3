import Foundation

/// Signs requests with an access key / secret key pair, for clients of the AI endpoints.
///
/// ```swift
/// let signer = Signer(accessKey: ak, secretKey: sk)
/// let signed = try signer.sign(method: "POST", url: "/ai/invoke/tts", headers: [("host", "api.example.com")],
///                              body: body, contentSHA256: true, nonce: Signer.makeNonce())
/// for (name, value) in signed.headersToAdd { request.headers.add(name: name, value: value) }
/// ```
public struct Signer: Sendable {
    public var accessKey: String
    public var secretKey: String

    public init(accessKey: String, secretKey: String) {
        self.accessKey = accessKey
        self.secretKey = secretKey
    }

    /// A signed request: what to add to it, and the intermediate values (for debugging a mismatch).
    public struct Signed: Sendable, Equatable {
        /// The value of the `x-authorization` header.
        public var authorization: String
        /// Headers the request must carry besides its own: `x-authorization`, and `host`,
        /// `x-cc-content-sha256`, `x-cc-nonce` when the signer added them. Add every one.
        public var headersToAdd: [Header]
        public var canonicalRequest: String
        public var authStringPrefix: String
        public var signedHeaders: [String]
    }

    public struct Header: Sendable, Equatable {
        public var name: String
        public var value: String

        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    /// Signs a request.
    ///
    /// - `url`: `/path?query` as it will be sent, or an absolute `http(s)://host[:port]/path?query`
    ///   (whose authority becomes the `host` header when `headers` has none). Non-ASCII characters
    ///   may be written plainly or percent-encoded: both sign alike.
    /// - `headers`: headers the request carries; every one is signed (except an `x-authorization`).
    /// - `contentSHA256`: also sign `x-cc-content-sha256` = hex SHA-256 of `body` (empty if nil).
    /// - `nonce`: also sign `x-cc-nonce` with this value (see `makeNonce`).
    public func sign(
        method: String,
        url: String,
        headers: [(name: String, value: String)] = [],
        body: [UInt8]? = nil,
        date: Date = Date(),
        expirationSeconds: Int = 300,
        contentSHA256: Bool = false,
        nonce: String? = nil
    ) throws(CCAuthV1Error) -> Signed {
        guard expirationSeconds > 0 else { throw .invalidExpiration }
        let target = RequestTarget(url)
        var signed = headers
            .filter { $0.name.lowercased() != CCAuthV1.authorizationHeader }
            .map { (name: $0.name.lowercased(), value: $0.value) }
        var added: [Header] = []
        func set(_ name: String, _ value: String) {
            signed.removeAll { $0.name == name }
            signed.append((name, value))
            added.append(Header(name: name, value: value))
        }
        if !signed.contains(where: { $0.name == "host" }) {
            guard let host = target.host else { throw .missingHost }
            set("host", host)
        }
        if contentSHA256 { set(CCAuthV1.contentSHA256Header, CCAuthV1.sha256Hex(body ?? [])) }
        if let nonce { set(CCAuthV1.nonceHeader, nonce) }
        var seen = Set<String>()
        for header in signed where !seen.insert(header.name).inserted { throw .repeatedHeader(header.name) }

        let prefix = CCAuthV1.authStringPrefix(accessKey: accessKey, timestamp: CCAuthTimestamp.format(date), expirationSeconds: String(expirationSeconds))
        let canonical = CCAuthV1.canonicalRequest(method: method, path: target.path, rawQuery: target.query, headers: signed)
        let names = signed.map(\.name).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        let signature = CCAuthV1.signature(secretKey: secretKey, authStringPrefix: prefix, canonicalRequest: canonical)
        let authorization = prefix + "/" + names.joined(separator: ";") + "/" + signature
        return Signed(
            authorization: authorization,
            headersToAdd: [Header(name: CCAuthV1.authorizationHeader, value: authorization)] + added,
            canonicalRequest: canonical, authStringPrefix: prefix, signedHeaders: names
        )
    }

    /// A fresh random nonce: 32 hex characters (128 bits), within the 8–64 characters allowed.
    public static func makeNonce() -> String {
        var generator = SystemRandomNumberGenerator()
        return CCAuthV1.hex((0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
    }
}

/// The parts of a URL that signing needs: host (for an absolute URL), path and raw query.
struct RequestTarget {
    var host: String?
    var path: String
    var query: String?

    init(_ url: String) {
        var rest = Substring(url)
        if let fragment = rest.firstIndex(of: "#") { rest = rest[..<fragment] }
        var host: String?
        if let schemeEnd = rest.range(of: "://") {
            let scheme = rest[..<schemeEnd.lowerBound].lowercased()
            let afterScheme = rest[schemeEnd.upperBound...]
            let authorityEnd = afterScheme.firstIndex { $0 == "/" || $0 == "?" } ?? afterScheme.endIndex
            var authority = afterScheme[..<authorityEnd]
            if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
            // HTTP clients leave a default port out of the Host header, so the signature must too.
            for (defaultScheme, port) in [("http", ":80"), ("https", ":443")] where scheme == defaultScheme && authority.hasSuffix(port) {
                authority = authority.dropLast(port.count)
            }
            host = authority.isEmpty ? nil : String(authority)
            rest = afterScheme[authorityEnd...]
        }
        self.host = host
        if let question = rest.firstIndex(of: "?") {
            path = String(rest[..<question])
            query = String(rest[rest.index(after: question)...])
        } else {
            path = String(rest)
            query = nil
        }
    }
}
