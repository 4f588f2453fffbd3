import AKSKSigning
import Foundation
import Testing

@Suite("cc-auth-v1 canonical forms")
struct CanonicalFormTests {
    @Test("encodeURI and encodeURIComponent keep exactly JavaScript's characters")
    func encoding() {
        #expect(CCAuthV1.encodeURI("/example/测试") == "/example/%E6%B5%8B%E8%AF%95")
        #expect(CCAuthV1.encodeURIComponent("测试") == "%E6%B5%8B%E8%AF%95")
        #expect(CCAuthV1.encodeURIComponent("text/plain") == "text%2Fplain")
        let unreserved = "ABCXYZabcxyz0189-_.!~*'()"
        #expect(CCAuthV1.encodeURIComponent(unreserved) == unreserved)
        #expect(CCAuthV1.encodeURI(unreserved) == unreserved)
        let reserved = ";,/?:@&=+$#"
        #expect(CCAuthV1.encodeURI(reserved) == reserved)
        #expect(CCAuthV1.encodeURIComponent(reserved) == "%3B%2C%2F%3F%3A%40%26%3D%2B%24%23")
        #expect(CCAuthV1.encodeURIComponent(" \"%<>[]^`{|}\\") == "%20%22%25%3C%3E%5B%5D%5E%60%7B%7C%7D%5C")
        #expect(CCAuthV1.encodeURI("a b%") == "a%20b%25")
        #expect(CCAuthV1.encodeURIComponent("é😀") == "%C3%A9%F0%9F%98%80")
    }

    @Test("the canonical URI decodes the wire form before encoding, and an empty path is /")
    func canonicalURI() {
        #expect(CCAuthV1.canonicalURI(path: "") == "/")
        #expect(CCAuthV1.canonicalURI(path: "/") == "/")
        #expect(CCAuthV1.canonicalURI(path: "/example/测试") == "/example/%E6%B5%8B%E8%AF%95")
        #expect(CCAuthV1.canonicalURI(path: "/example/%e6%b5%8b%E8%AF%95") == "/example/%E6%B5%8B%E8%AF%95")
        #expect(CCAuthV1.canonicalURI(path: "/a b/c+d") == "/a%20b/c+d")
        #expect(CCAuthV1.canonicalURI(path: "/100%") == "/100%25")
        #expect(CCAuthV1.canonicalURI(path: "/ai/invoke/chat_completion") == "/ai/invoke/chat_completion")
    }

    @Test("query strings: the documented example, no query, no '=', empty values, x-authorization, repeated keys")
    func queries() {
        #expect(CCAuthV1.canonicalQueryString(rawQuery: "text&text1=测试&text10=test") == "text10=test&text1=%E6%B5%8B%E8%AF%95&text=")
        #expect(CCAuthV1.canonicalQueryString(rawQuery: nil) == "")
        #expect(CCAuthV1.canonicalQueryString(rawQuery: "") == "")
        #expect(CCAuthV1.canonicalQueryString(rawQuery: "a") == "a=")
        #expect(CCAuthV1.canonicalQueryString(rawQuery: "a=") == "a=")
        #expect(CCAuthV1.canonicalQueryString(rawQuery: "b=2&a=1&&") == "a=1&b=2")
        #expect(CCAuthV1.canonicalQueryString(rawQuery: "x-authorization=cc-auth-v1%2Fabc&z=1") == "z=1")
        #expect(CCAuthV1.canonicalQueryString(rawQuery: "x%2Dauthorization=abc") == "")
        #expect(CCAuthV1.canonicalQueryString(rawQuery: "a=2&a=1&a") == "a=&a=1&a=2")
        #expect(CCAuthV1.canonicalQueryString(rawQuery: "k=a=b") == "k=a%3Db")
        // Keys and values are decoded first: %20, '+' and a plain space all mean a space.
        #expect(CCAuthV1.canonicalQueryString(rawQuery: "q=a%20b&r=a+b&s=%2B") == "q=a%20b&r=a%20b&s=%2B")
        #expect(CCAuthV1.canonicalQueryString(rawQuery: "q=%E6%B5%8B%E8%AF%95") == "q=%E6%B5%8B%E8%AF%95")
        #expect(CCAuthV1.canonicalQueryString(rawQuery: "p=100%&t=%zz") == "p=100%25&t=%25zz")
        #expect(CCAuthV1.canonicalQueryString(items: [("text", nil), ("text1", "测试"), ("text10", "test"), ("x-authorization", "x")])
            == "text10=test&text1=%E6%B5%8B%E8%AF%95&text=")
    }

    @Test("canonical headers sort whole lines, lower-case names, trim and encode values, whatever the input order")
    func headers() {
        let expected = "content-type:application%2Fjson\nhost:api.example.com\nx-cc-meta-data:a%20b"
        #expect(CCAuthV1.canonicalHeaders(KnownAnswer.headers) == expected)
        #expect(CCAuthV1.canonicalHeaders(KnownAnswer.headers.reversed()) == expected)
        #expect(CCAuthV1.canonicalHeaders([("Content-Type", "text/plain")]) == "content-type:text%2Fplain")
        #expect(CCAuthV1.canonicalHeaders([("X-A", "\t v \r\n")]) == "x-a:v")
        // Sorted by the whole "name:value" line: "x-a-b:1" sorts before "x-a:1" ('-' < ':').
        #expect(CCAuthV1.canonicalHeaders([("x-a", "1"), ("x-a-b", "1")]) == "x-a-b:1\nx-a:1")
        #expect(CCAuthV1.canonicalHeaders([]) == "")
    }

    @Test("header values lose surrounding white space only, and are not copied when they have none")
    func trimming() {
        #expect(CCAuthV1.trimmed("  a b  ") == "a b")
        #expect(CCAuthV1.trimmed("\t\r\n v \u{3000}") == "v")
        #expect(CCAuthV1.trimmed("plain") == "plain")
        #expect(CCAuthV1.trimmed(" \t ") == "")
        #expect(CCAuthV1.trimmed("") == "")
        #expect(CCAuthV1.trimmed(" 测试 ") == "测试")
    }

    @Test("header names match in any ASCII case and nothing else")
    func headerNames() {
        #expect(CCAuthV1.headerName("X-CC-Nonce", is: "x-cc-nonce"))
        #expect(CCAuthV1.headerName("x-cc-nonce", is: "x-cc-nonce"))
        #expect(!CCAuthV1.headerName("x-cc-nonc", is: "x-cc-nonce"))
        #expect(!CCAuthV1.headerName("x-cc-nonce2", is: "x-cc-nonce"))
        #expect(!CCAuthV1.headerName("x_cc_nonce", is: "x-cc-nonce"))
        // '[' is 'Z' + 1 and '{' is 'z' + 1: no letters, no match.
        #expect(!CCAuthV1.headerName("[", is: "{"))
    }

    @Test("signed headers are picked case-insensitively; absent or repeated ones are refused")
    func selection() throws {
        let request: [(name: String, value: String)] = [("Host", "h"), ("X-Two", "1"), ("x-two", "2"), ("Accept", "*/*")]
        let picked = try CCAuthV1.selectSignedHeaders(["host"], from: request)
        #expect(picked.map(\.name) == ["host"] && picked.map(\.value) == ["h"])
        #expect(throws: CCAuthV1Error.missingSignedHeader("x-one")) { try CCAuthV1.selectSignedHeaders(["host", "x-one"], from: request) }
        #expect(throws: CCAuthV1Error.repeatedHeader("x-two")) { try CCAuthV1.selectSignedHeaders(["x-two"], from: request) }
    }

    @Test("timestamps: formatted in UTC, parsed with or without .SSS, anything else refused")
    func timestamps() {
        #expect(CCAuthTimestamp.format(KnownAnswer.date) == "2026-01-02T03:04:05Z")
        #expect(CCAuthTimestamp.format(KnownAnswer.date.addingTimeInterval(0.999)) == "2026-01-02T03:04:05Z")
        #expect(CCAuthTimestamp.format(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00Z")
        #expect(CCAuthTimestamp.format(Date(timeIntervalSince1970: 951_782_400)) == "2000-02-29T00:00:00Z")
        #expect(CCAuthTimestamp.parse("2026-01-02T03:04:05Z") == KnownAnswer.date)
        #expect(CCAuthTimestamp.parse("2026-01-02T03:04:05.250Z") == KnownAnswer.date.addingTimeInterval(0.25))
        #expect(CCAuthTimestamp.parse("2000-02-29T00:00:00Z") == Date(timeIntervalSince1970: 951_782_400))
        for bad in [
            "", "2026-01-02 03:04:05Z", "2026-01-02T03:04:05", "2026-01-02T03:04:05+00:00", "2026-1-02T03:04:05Z",
            "2026-13-02T03:04:05Z", "2026-02-30T03:04:05Z", "2100-02-29T00:00:00Z", "2026-01-02T24:00:00Z",
            "2026-01-02T03:60:05Z", "2026-01-02T03:04:60Z", "2026-01-02T03:04:05.5Z", "2026-01-02T03:04:05.1234Z",
            "2026-01-02t03:04:05z", "２026-01-02T03:04:05Z", "2026-01-02T03:04:05.ABCZ", "1767323045",
        ] {
            #expect(CCAuthTimestamp.parse(bad) == nil, "\(bad)")
        }
        for seconds in [0, 1, 86_399, 1_000_000_000, 1_767_323_045, 4_102_444_800] {
            let date = Date(timeIntervalSince1970: TimeInterval(seconds))
            #expect(CCAuthTimestamp.parse(CCAuthTimestamp.format(date)) == date)
        }
    }

    @Test("formats: access keys, signatures and expirations")
    func formats() {
        #expect(CCAuthV1.isAccessKey("Zx8Kq2LmN4pR6tV8wY0a"))
        #expect(CCAuthV1.isAccessKey("Zx8Kq2LmN4pR6tV8wY0_"))
        #expect(!CCAuthV1.isAccessKey("Zx8Kq2LmN4pR6tV8wY0"))
        #expect(!CCAuthV1.isAccessKey("Zx8Kq2LmN4pR6tV8wY0-"))
        #expect(!CCAuthV1.isAccessKey("Zx8Kq2LmN4pR6tV8wY0é"))
        #expect(CCAuthV1.isSignature(KnownAnswer.signature))
        #expect(!CCAuthV1.isSignature(KnownAnswer.signature.uppercased()))
        #expect(!CCAuthV1.isSignature(String(KnownAnswer.signature.dropLast())))
        #expect(CCAuthV1.expirationSeconds("300") == 300)
        for bad in ["0", "-1", "+5", "1.5", "", "abc", " 30", "99999999999999999999999"] {
            #expect(CCAuthV1.expirationSeconds(bad) == nil, "\(bad)")
        }
    }

    @Test("authorization strings need exactly six parts")
    func badAuthorization() throws {
        for bad in ["", "cc-auth-v1", "cc-auth-v1/a/b/c/d", "cc-auth-v1/a/b/c/d/e/f"] {
            #expect(throws: CCAuthV1Error.malformedAuthorization) { try AuthorizationString(parsing: bad) }
        }
        let odd = try AuthorizationString(parsing: "v2/ak/ts/0//sig")
        #expect(odd.version == "v2" && odd.signedHeaders == [""] && odd.expiration == "0")
    }

    @Test("constant-time comparison is plain equality")
    func comparison() {
        #expect(CCAuthV1.constantTimeEquals("abc", "abc"))
        #expect(!CCAuthV1.constantTimeEquals("abc", "abd"))
        #expect(!CCAuthV1.constantTimeEquals("abc", "abcd"))
        #expect(CCAuthV1.constantTimeEquals("", ""))
    }

    @Test("sha256Hex is the lower-case hex digest")
    func digest() {
        #expect(CCAuthV1.sha256Hex([UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(CCAuthV1.sha256Hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}
