import AKSKSigning
import Foundation
import Testing

/// The worked example of shared/docs/aksk-v1.md, byte for byte.
enum KnownAnswer {
    static let accessKey = "Zx8Kq2LmN4pR6tV8wY0a"
    static let secretKey = "h7Gf3Dk9Lq2Wm5Np8Rt1Vx4Zb6Cj0Ey3Ua7Io9Pq"
    static let method = "GET"
    static let path = "/ai/chat/model/测试"
    static let query = "text&text1=测试&text10=test"
    static let headers: [(name: String, value: String)] = [
        ("Host", "api.example.com"),
        ("Content-Type", "application/json"),
        ("x-cc-meta-data", "  a b  "),
    ]
    static let timestamp = "2026-01-02T03:04:05Z"
    static let date = Date(timeIntervalSince1970: 1_767_323_045)  // 2026-01-02T03:04:05Z
    static let prefix = "cc-auth-v1/Zx8Kq2LmN4pR6tV8wY0a/2026-01-02T03:04:05Z/300"
    static let canonicalRequest = """
        GET
        /ai/chat/model/%E6%B5%8B%E8%AF%95
        text10=test&text1=%E6%B5%8B%E8%AF%95&text=
        content-type:application%2Fjson
        host:api.example.com
        x-cc-meta-data:a%20b
        """
    static let signingKey = "37206e163eb92892bfc9b09758632d3bbfa17d34b7b52e23e0b59212b65b3ba2"
    static let signature = "95d4735429620d489d13b642212b3819579e72281db898f0b0c2fa034b6eff7e"
    static let authorization =
        "cc-auth-v1/Zx8Kq2LmN4pR6tV8wY0a/2026-01-02T03:04:05Z/300/content-type;host;x-cc-meta-data/95d4735429620d489d13b642212b3819579e72281db898f0b0c2fa034b6eff7e"
}

@Suite("cc-auth-v1 known answer")
struct KnownAnswerTests {
    @Test("each step of the worked example gives the documented bytes")
    func steps() {
        #expect(CCAuthV1.authStringPrefix(accessKey: KnownAnswer.accessKey, timestamp: KnownAnswer.timestamp, expirationSeconds: "300") == KnownAnswer.prefix)
        let canonical = CCAuthV1.canonicalRequest(
            method: "get", path: KnownAnswer.path, rawQuery: KnownAnswer.query, headers: KnownAnswer.headers
        )
        #expect(canonical == KnownAnswer.canonicalRequest)
        let key = CCAuthV1.signingKey(secretKey: KnownAnswer.secretKey, authStringPrefix: KnownAnswer.prefix)
        #expect(key == KnownAnswer.signingKey)
        #expect(CCAuthV1.signature(signingKey: key, canonicalRequest: canonical) == KnownAnswer.signature)
        #expect(CCAuthV1.verify(secretKey: KnownAnswer.secretKey, authStringPrefix: KnownAnswer.prefix, canonicalRequest: canonical, signature: KnownAnswer.signature))
    }

    @Test("the signer produces the documented x-authorization, from the plain or the percent-encoded URL")
    func signer() throws {
        let signer = Signer(accessKey: KnownAnswer.accessKey, secretKey: KnownAnswer.secretKey)
        for url in [
            KnownAnswer.path + "?" + KnownAnswer.query,
            "/ai/chat/model/%E6%B5%8B%E8%AF%95?text&text1=%E6%B5%8B%E8%AF%95&text10=test",
            "https://api.example.com:443/ai/chat/model/%E6%B5%8B%E8%AF%95?text&text1=%E6%B5%8B%E8%AF%95&text10=test#frag",
        ] {
            let signed = try signer.sign(method: "GET", url: url, headers: KnownAnswer.headers, date: KnownAnswer.date, expirationSeconds: 300)
            #expect(signed.authorization == KnownAnswer.authorization)
            #expect(signed.canonicalRequest == KnownAnswer.canonicalRequest)
            #expect(signed.headersToAdd == [Signer.Header(name: "x-authorization", value: KnownAnswer.authorization)])
        }
    }

    @Test("the worked example's authorization string parses into its six parts and back")
    func parse() throws {
        let parsed = try AuthorizationString(parsing: KnownAnswer.authorization)
        #expect(parsed.version == "cc-auth-v1")
        #expect(parsed.accessKey == KnownAnswer.accessKey)
        #expect(parsed.timestamp == KnownAnswer.timestamp)
        #expect(parsed.expiration == "300")
        #expect(parsed.signedHeaders == ["content-type", "host", "x-cc-meta-data"])
        #expect(parsed.signature == KnownAnswer.signature)
        #expect(parsed.authStringPrefix == KnownAnswer.prefix)
        #expect(parsed.description == KnownAnswer.authorization)
    }
}
