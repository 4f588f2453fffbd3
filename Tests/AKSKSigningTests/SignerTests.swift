import AKSKSigning
import Foundation
import Testing

@Suite("cc-auth-v1 signer")
struct SignerTests {
    let signer = Signer(accessKey: KnownAnswer.accessKey, secretKey: KnownAnswer.secretKey)

    @Test("content digest and nonce are added as signed headers; host comes from an absolute URL")
    func extras() throws {
        let body = Array("{\"question\":\"hi\"}".utf8)
        let signed = try signer.sign(
            method: "post", url: "http://127.0.0.1:9000/ai/invoke/chat_completion", body: body,
            date: KnownAnswer.date, expirationSeconds: 60, contentSHA256: true, nonce: "nonce-123456"
        )
        let digest = CCAuthV1.sha256Hex(body)
        #expect(signed.signedHeaders == ["host", "x-cc-content-sha256", "x-cc-nonce"])
        #expect(signed.headersToAdd.map(\.name) == ["x-authorization", "host", "x-cc-content-sha256", "x-cc-nonce"])
        #expect(signed.headersToAdd.map(\.value).dropFirst() == ["127.0.0.1:9000", digest, "nonce-123456"])
        #expect(signed.canonicalRequest == "POST\n/ai/invoke/chat_completion\n\nhost:127.0.0.1%3A9000\nx-cc-content-sha256:\(digest)\nx-cc-nonce:nonce-123456")
        #expect(signed.authStringPrefix == "cc-auth-v1/Zx8Kq2LmN4pR6tV8wY0a/2026-01-02T03:04:05Z/60")

        // The verifier's view: parse the string, pick the signed headers, recompute.
        let parsed = try AuthorizationString(parsing: signed.authorization)
        let requestHeaders = [("Content-Type", "application/json")] + signed.headersToAdd.map { ($0.name, $0.value) }
        let picked = try CCAuthV1.selectSignedHeaders(parsed.signedHeaders.reversed(), from: requestHeaders)
        let canonical = CCAuthV1.canonicalRequest(method: "POST", path: "/ai/invoke/chat_completion", rawQuery: nil, headers: picked)
        #expect(CCAuthV1.verify(secretKey: KnownAnswer.secretKey, authStringPrefix: parsed.authStringPrefix, canonicalRequest: canonical, signature: parsed.signature))
        #expect(!CCAuthV1.verify(secretKey: "x" + KnownAnswer.secretKey.dropFirst(), authStringPrefix: parsed.authStringPrefix, canonicalRequest: canonical, signature: parsed.signature))
    }

    @Test("without a body the digest is that of no bytes; a caller's own digest header is replaced")
    func emptyBody() throws {
        let signed = try signer.sign(
            method: "GET", url: "/x", headers: [("host", "h"), ("X-CC-Content-SHA256", "stale")], date: KnownAnswer.date, contentSHA256: true
        )
        #expect(signed.headersToAdd.last == Signer.Header(name: "x-cc-content-sha256", value: CCAuthV1.sha256Hex([UInt8]())))
        #expect(!signed.canonicalRequest.contains("stale"))
    }

    @Test("the x-authorization value does not depend on the order the headers were given in")
    func orderIndependence() throws {
        let one = try signer.sign(method: "GET", url: "/a?b=1", headers: KnownAnswer.headers, date: KnownAnswer.date)
        let two = try signer.sign(method: "GET", url: "/a?b=1", headers: KnownAnswer.headers.reversed(), date: KnownAnswer.date)
        #expect(one.authorization == two.authorization)
        #expect(one.signedHeaders == ["content-type", "host", "x-cc-meta-data"])
    }

    @Test("bad inputs: no host, non-positive expiration, a header given twice")
    func badInputs() {
        #expect(throws: CCAuthV1Error.missingHost) { try signer.sign(method: "GET", url: "/no-host") }
        #expect(throws: CCAuthV1Error.invalidExpiration) { try signer.sign(method: "GET", url: "http://h/", expirationSeconds: 0) }
        #expect(throws: CCAuthV1Error.repeatedHeader("x-a")) {
            try signer.sign(method: "GET", url: "http://h/", headers: [("x-a", "1"), ("X-A", "2")])
        }
    }

    @Test("nonces are 32 hex characters and differ")
    func nonces() {
        let first = Signer.makeNonce()
        #expect(first.count == 32 && first.allSatisfy(\.isHexDigit))
        #expect(first != Signer.makeNonce())
    }
}
