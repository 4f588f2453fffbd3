import Foundation
import Testing
@testable import AKSKSigning

@Suite("signed request checks")
struct SignedRequestCheckTests {
    // The worked example of aksk-v1.md, as it arrives on the wire (path and query percent-encoded).
    static let accessKey = "Zx8Kq2LmN4pR6tV8wY0a"
    static let secretKey = "h7Gf3Dk9Lq2Wm5Np8Rt1Vx4Zb6Cj0Ey3Ua7Io9Pq"
    static let path = "/ai/chat/model/%E6%B5%8B%E8%AF%95"
    static let query = "text&text1=%E6%B5%8B%E8%AF%95&text10=test"
    static let signedAt = Date(timeIntervalSince1970: 1_767_323_045)  // 2026-01-02T03:04:05Z
    static let authorization =
        "cc-auth-v1/Zx8Kq2LmN4pR6tV8wY0a/2026-01-02T03:04:05Z/300/content-type;host;x-cc-meta-data/95d4735429620d489d13b642212b3819579e72281db898f0b0c2fa034b6eff7e"
    static let headers: [(name: String, value: String)] = [
        ("Host", "api.example.com"), ("Content-Type", "application/json"), ("x-cc-meta-data", "  a b  "), ("Accept", "*/*"),
    ]
    static let canonicalRequest =
        "GET\n/ai/chat/model/%E6%B5%8B%E8%AF%95\ntext10=test&text1=%E6%B5%8B%E8%AF%95&text=\ncontent-type:application%2Fjson\nhost:api.example.com\nx-cc-meta-data:a%20b"

    static func check(
        method: String = "GET", path: String = path, query: String? = query,
        headers: [(name: String, value: String)] = headers + [("X-Authorization", authorization)],
        body: String = "", now: Date = signedAt.addingTimeInterval(10), policy: SignaturePolicy = SignaturePolicy()
    ) throws(SignedRequestRejection) -> SignatureVerification {
        let verification = try SignedRequestCheck.check(method: method, path: path, rawQuery: query, headers: headers, now: now, policy: policy)
        try SignedRequestCheck.verifyContentDigest(headers: headers, body: Array(body.utf8))
        return verification
    }

    /// The header list with `x-authorization` replaced by `value`.
    static func with(authorization value: String, extra: [(name: String, value: String)] = []) -> [(name: String, value: String)] {
        headers + extra + [("x-authorization", value)]
    }

    /// The message and status of the rejection `body` throws, or nil if it passes.
    static func rejection(_ body: () throws -> SignatureVerification) -> (String, Int)? {
        do {
            _ = try body()
            return nil
        } catch let error as SignedRequestRejection {
            return (error.message, error.status)
        } catch {
            return ("unexpected \(error)", 0)
        }
    }

    @Test("the known-answer request gives the documented canonical request and VerifySignature inputs")
    func knownAnswer() throws {
        let verification = try Self.check()
        #expect(verification.accessKey == Self.accessKey)
        #expect(verification.authStringPrefix == "cc-auth-v1/Zx8Kq2LmN4pR6tV8wY0a/2026-01-02T03:04:05Z/300")
        #expect(verification.canonicalRequest == Self.canonicalRequest)
        #expect(verification.signature == "95d4735429620d489d13b642212b3819579e72281db898f0b0c2fa034b6eff7e")
        #expect(verification.nonce == nil)
        #expect(verification.expiresAt == Self.signedAt.addingTimeInterval(300))
        #expect(CCAuthV1.verify(secretKey: Self.secretKey, authStringPrefix: verification.authStringPrefix,
                                canonicalRequest: verification.canonicalRequest, signature: verification.signature))
        // The method is upper-cased and the unencoded path canonicalizes alike.
        #expect(try Self.check(method: "get", path: "/ai/chat/model/测试").canonicalRequest == Self.canonicalRequest)
    }

    @Test("the authorization may come from the query (url-encoded); the header wins when both are there")
    func queryAndHeader() throws {
        let encoded = CCAuthV1.encodeURIComponent(Self.authorization)
        let fromQuery = try Self.check(query: Self.query + "&x-authorization=" + encoded, headers: Self.headers)
        #expect(fromQuery.canonicalRequest == Self.canonicalRequest)
        #expect(fromQuery.signature == "95d4735429620d489d13b642212b3819579e72281db898f0b0c2fa034b6eff7e")

        let both = try Self.check(query: "x-authorization=cc-auth-v2%2Fbogus&" + Self.query)
        #expect(both.canonicalRequest == Self.canonicalRequest)

        #expect(Self.rejection { try Self.check(query: Self.query + "&x-authorization=cc-auth-v2%2Fa%2Fb%2Fc%2Fd%2Fe", headers: Self.headers) }
            ?? ("", 0) == ("InvalidVersion", 404))
    }

    @Test("every error row of the table, with its status")
    func errorRows() {
        let valid = try? AuthorizationString(parsing: Self.authorization)
        func variant(_ change: (inout AuthorizationString) -> Void) -> String {
            guard var parts = valid else { return "" }
            change(&parts)
            return parts.description
        }
        let cases: [(String, [(name: String, value: String)], String, Int)] = [
            ("no authorization", Self.headers, "InvalidHTTPAuthHeader", 400),
            ("empty", Self.with(authorization: ""), "InvalidHTTPAuthHeader", 400),
            ("five parts", Self.with(authorization: "cc-auth-v1/Zx8Kq2LmN4pR6tV8wY0a/2026-01-02T03:04:05Z/300/host"), "InvalidHTTPAuthHeader", 400),
            ("two headers", Self.with(authorization: Self.authorization, extra: [("x-authorization", Self.authorization)]), "InvalidHTTPAuthHeader", 400),
            ("version", Self.with(authorization: variant { $0.version = "cc-auth-v2" }), "InvalidVersion", 404),
            ("short key", Self.with(authorization: variant { $0.accessKey = "Zx8Kq2" }), "InvalidAccessKeyId", 403),
            ("key charset", Self.with(authorization: variant { $0.accessKey = "Zx8Kq2LmN4pR6tV8wY0-" }), "InvalidAccessKeyId", 403),
            ("timestamp", Self.with(authorization: variant { $0.timestamp = "2026-01-02 03:04:05" }), "InvalidTimestamp", 400),
            ("timestamp date", Self.with(authorization: variant { $0.timestamp = "2026-02-30T03:04:05Z" }), "InvalidTimestamp", 400),
            ("zero expiration", Self.with(authorization: variant { $0.expiration = "0" }), "RequestExpired", 400),
            ("negative expiration", Self.with(authorization: variant { $0.expiration = "-300" }), "RequestExpired", 400),
            ("text expiration", Self.with(authorization: variant { $0.expiration = "soon" }), "RequestExpired", 400),
            ("huge expiration", Self.with(authorization: variant { $0.expiration = "604801" }), "RequestExpired", 400),
            ("host unsigned", Self.with(authorization: variant { $0.signedHeaders = ["content-type", "x-cc-meta-data"] }), "InvalidHTTPAuthHeader", 400),
            ("repeated name", Self.with(authorization: variant { $0.signedHeaders = ["host", "host"] }), "InvalidHTTPAuthHeader", 400),
            ("upper-case name", Self.with(authorization: variant { $0.signedHeaders = ["Content-Type", "host", "x-cc-meta-data"] }), "InvalidHTTPAuthHeader", 400),
            ("upper-case host", Self.with(authorization: variant { $0.signedHeaders = ["content-type", "HOST", "x-cc-meta-data"] }), "InvalidHTTPAuthHeader", 400),
            ("empty name", Self.with(authorization: variant { $0.signedHeaders = ["host", ""] }), "InvalidHTTPAuthHeader", 400),
            ("signature format", Self.with(authorization: variant { $0.signature = $0.signature.uppercased() }), "SignatureDoesNotMatch", 400),
            ("missing signed header", Self.with(authorization: variant { $0.signedHeaders = ["host", "x-missing"] }), "SignatureDoesNotMatch", 400),
        ]
        for (name, headers, message, status) in cases {
            let got = Self.rejection { try Self.check(headers: headers) }
            #expect(got?.0 == message && got?.1 == status, "\(name): \(String(describing: got))")
        }
    }

    @Test("time: the future beyond the skew and the past beyond the expiration are RequestExpired")
    func time() throws {
        let skew = SignaturePolicy(clockSkewSeconds: 60)
        #expect(throws: Never.self) { try Self.check(now: Self.signedAt.addingTimeInterval(-60), policy: skew) }
        #expect(Self.rejection { try Self.check(now: Self.signedAt.addingTimeInterval(-61), policy: skew) }?.0 == "RequestExpired")
        #expect(Self.rejection { try Self.check(now: Self.signedAt.addingTimeInterval(-301)) }?.0 == "RequestExpired")
        #expect(throws: Never.self) { try Self.check(now: Self.signedAt.addingTimeInterval(300)) }
        #expect(Self.rejection { try Self.check(now: Self.signedAt.addingTimeInterval(301)) } ?? ("", 0) == ("RequestExpired", 400))
        #expect(Self.rejection { try Self.check(now: Self.signedAt.addingTimeInterval(30), policy: SignaturePolicy(maxExpirationSeconds: 299)) }?.0 == "RequestExpired")
    }

    @Test("a signed timestamp with milliseconds is accepted and keeps its exact text in the prefix")
    func milliseconds() throws {
        let signer = Signer(accessKey: Self.accessKey, secretKey: Self.secretKey)
        let signed = try signer.sign(method: "GET", url: "/x", headers: [("host", "h")], date: Self.signedAt)
        let parts = try AuthorizationString(parsing: signed.authorization)
        var withMillis = parts
        withMillis.timestamp = "2026-01-02T03:04:05.500Z"
        let verification = try Self.check(path: "/x", query: nil, headers: [("host", "h"), ("x-authorization", withMillis.description)])
        #expect(verification.authStringPrefix == "cc-auth-v1/Zx8Kq2LmN4pR6tV8wY0a/2026-01-02T03:04:05.500Z/300")
        #expect(verification.expiresAt == Self.signedAt.addingTimeInterval(300.5))
    }

    @Test("content digest: checked against the body when present, after the signature checks")
    func digest() throws {
        let signer = Signer(accessKey: Self.accessKey, secretKey: Self.secretKey)
        let body = "{\"question\":\"hello\"}"
        let signed = try signer.sign(method: "POST", url: "/ai/invoke/chat_completion", headers: [("host", "h")], body: Array(body.utf8), date: Self.signedAt, contentSHA256: true)
        let headers = [("host", "h")] + signed.headersToAdd.filter { $0.name != "host" }.map { ($0.name, $0.value) }
        let verification = try Self.check(method: "POST", path: "/ai/invoke/chat_completion", query: nil, headers: headers, body: body)
        #expect(CCAuthV1.verify(secretKey: Self.secretKey, authStringPrefix: verification.authStringPrefix, canonicalRequest: verification.canonicalRequest, signature: verification.signature))
        #expect(Self.rejection { try Self.check(method: "POST", path: "/ai/invoke/chat_completion", query: nil, headers: headers, body: body + " ") }
            ?? ("", 0) == ("ContentDigestMismatch", 400))
        // The signature checks need no body: a server checks them before it reads one.
        _ = try SignedRequestCheck.check(
            method: "POST", path: "/ai/invoke/chat_completion", rawQuery: nil, headers: headers, now: Self.signedAt, policy: SignaturePolicy()
        )
        // Without the digest header there is nothing to check; two that disagree are refused.
        #expect(throws: Never.self) { try SignedRequestCheck.verifyContentDigest(headers: [("host", "h")], body: Array("anything".utf8)) }
        let twice = headers + [("X-CC-Content-SHA256", CCAuthV1.sha256Hex(Array("other".utf8)))]
        #expect(throws: SignedRequestRejection.self) { try SignedRequestCheck.verifyContentDigest(headers: twice, body: Array(body.utf8)) }
    }

    @Test("nonces: signed and well-formed pass; missing when required, unsigned or malformed are InvalidNonce")
    func nonces() throws {
        let signer = Signer(accessKey: Self.accessKey, secretKey: Self.secretKey)
        func headers(nonce: String) throws -> [(name: String, value: String)] {
            try signer.sign(method: "GET", url: "http://h/x", date: Self.signedAt, nonce: nonce).headersToAdd.map { ($0.name, $0.value) }
        }
        let required = SignaturePolicy(requireNonce: true)
        let good = try Self.check(path: "/x", query: nil, headers: try headers(nonce: "0123456789abcdef"), policy: required)
        #expect(good.nonce == "0123456789abcdef")
        #expect(try Self.check(path: "/x", query: nil, headers: try headers(nonce: String(repeating: "A", count: 64))).nonce?.count == 64)
        #expect(try Self.check(path: "/x", query: nil, headers: try headers(nonce: "1b4e28ba-2fa1-11d2-883f-0016d3cca427")).nonce != nil)

        for bad in ["short", String(repeating: "A", count: 65), "has space ok", "ünïcode-nonce", "semi;colon!"] {
            let signed = try headers(nonce: bad)
            #expect(Self.rejection { try Self.check(path: "/x", query: nil, headers: signed) } ?? ("", 0) == ("InvalidNonce", 400), "\(bad)")
        }
        #expect(Self.rejection { try Self.check(policy: required) } ?? ("", 0) == ("InvalidNonce", 400))
        // Present but not signed: it would not protect anything, so it is refused.
        #expect(Self.rejection { try Self.check(headers: Self.with(authorization: Self.authorization, extra: [("x-cc-nonce", "0123456789abcdef")])) }?.0 == "InvalidNonce")
    }
}
