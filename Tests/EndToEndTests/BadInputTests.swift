import Crypto
import Foundation
import NIOHTTP1
import Testing
import TestSupport

/// Every kind of bad input gets the documented error body with a 4xx status, and leaves the
/// stored data as it was.
@Suite("bad input over HTTP", .serialized)
struct BadInputTests {
    @Test("rejected bodies and routes answer 4xx error bodies and change nothing", arguments: TestDatabaseKind.enabled)
    func rejectedRequests(kind: TestDatabaseKind) async throws {
        // A provider that is never called: chat models need one to exist.
        let settings = ["AI_PROVIDERS": "openai", "AI_PROVIDER_OPENAI_BASE_URL": "http://127.0.0.1:9/v1"]
        try await PlatformUnderTest.with(kind, settings: settings) { platform in
            _ = try await platform.register("alice")
            let token = try await platform.token("alice")
            let admin = try await platform.adminToken()
            let before = try await snapshot(platform, admin: admin)

            func expectError(_ reply: PlatformUnderTest.Reply, _ status: Int, code: Int? = nil, fields: Set<String>? = nil, _ comment: Comment) {
                #expect(reply.status == status, comment)
                #expect(reply.json["statusCode"] as? Int == status, comment)
                if let code { #expect(reply.json["code"] as? Int == code, comment) }
                #expect(!(reply.message.isEmpty), comment)
                #expect(reply.json["application"] is String && reply.json["hostname"] is String, comment)
                #expect(reply.json["requestId"] as? String == reply.headers.first(name: "x-request-id"), comment)
                #expect(reply.json["meta"] is [Any], comment)
                if let fields { #expect(reply.metaProperties == fields, comment) }
            }

            expectError(try await platform.request(.POST, "/user/register", json: #"{"username": "bob", "password": "#), 400, code: 600, "malformed JSON")
            expectError(try await platform.request(.POST, "/user/register", json: #"["bob"]"#), 400, code: 600, "not an object")
            expectError(try await platform.request(.POST, "/user/register", bytes: [0x7B, 0x22, 0xFF, 0xFE, 0x22, 0x3A, 0x31, 0x7D]), 400, code: 600, "non-UTF-8")
            expectError(
                try await platform.request(.POST, "/user/register", json: #"{"username": 12, "password": true}"#), 422, code: 600,
                fields: ["username", "password"], "wrong types"
            )
            expectError(try await platform.request(.POST, "/user/register", json: "{}"), 422, code: 600, fields: ["username", "password"], "missing fields")
            let long = String(repeating: "x", count: 51)
            expectError(
                try await platform.request(.POST, "/user/register", json: #"{"username": "\#(long)", "password": "short"}"#), 422, code: 600,
                fields: ["username", "password"], "over-long and too short strings"
            )
            let huge = #"{"username":"bob","password":"password123","pad":""# + String(repeating: "a", count: 1 << 20) + #""}"#
            expectError(try await platform.request(.POST, "/user/register", json: huge), 413, "body over 1 MiB")
            expectError(try await platform.request(.GET, "/no/such/route"), 404, "unknown route")
            let wrongMethod = try await platform.request(.POST, "/user/current")
            expectError(wrongMethod, 405, "wrong method")
            // /user/{id} has DELETE too, but the literal route wins: only what is served here.
            #expect(wrongMethod.headers.first(name: "allow") == "GET", "\(wrongMethod.headers)")
            let wrongOnParameter = try await platform.request(.POST, "/user/01JDQ70B3Y8G7H2K9M4N6P8R0S", token: admin)
            #expect(wrongOnParameter.headers.first(name: "allow") == "DELETE, GET", "\(wrongOnParameter.headers)")

            // Bodies that are not one JSON object, on every route that takes one.
            let modelId = try #require(try await platform.request(.POST, "/ai/chat/model", json: #"{"name": "m"}"#, token: token).data["id"] as? String)
            let aliceId = try #require(try await platform.request(.GET, "/user/current", token: token).data["id"] as? String)
            for (method, path, bearer) in [
                (HTTPMethod.PATCH, "/user/update", token), (.PATCH, "/ai/chat/model/\(modelId)", token), (.PUT, "/ai/quota/\(aliceId)", admin),
                (.POST, "/ai/chat/model", token), (.PATCH, "/user/update_security", admin), (.POST, "/user/register", nil),
            ] {
                expectError(try await platform.request(method, path, bytes: [], token: bearer), 400, code: 600, "empty body on \(method) \(path)")
                expectError(try await platform.request(method, path, json: #"{"a":1,}"#, token: bearer), 400, code: 600, "trailing comma on \(path)")
                expectError(try await platform.request(method, path, json: #"{"name":"x","name":"y"}"#, token: bearer), 400, code: 600, "repeated member on \(path)")
                expectError(try await platform.request(method, path, json: "{} {}", token: bearer), 400, code: 600, "two values on \(path)")
            }
            for bad in ["1e3", "-5", "0x10", "2026-02-30", "2026-1-01", "1.5", " 1"] {
                let encoded = bad.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? bad
                expectError(try await platform.request(.GET, "/ai/usage?to=\(encoded)", token: token), 422, code: 600, fields: ["to"], "to=\(bad)")
            }
            #expect(try await platform.request(.GET, "/ai/usage?from=2026-02-28&to=1893456000000", token: token).status == 200)
            expectError(try await platform.register("alice"), 409, "duplicate username")
            expectError(
                try await platform.request(.PATCH, "/user/update", json: #"{"avatar": 5, "password": "x"}"#, token: token), 422, code: 600,
                fields: ["avatar", "password"], "bad update"
            )
            expectError(
                try await platform.request(.PATCH, "/user/update_security", json: #"{"role": "emperor", "status": 7}"#, token: admin), 422, code: 600,
                fields: ["id", "role", "status"], "bad update_security"
            )
            expectError(try await platform.request(.GET, "/user?current=0&pageSize=500", token: admin), 422, code: 600, fields: ["current", "pageSize"], "bad page")

            // A NUL character, which PostgreSQL cannot store in text, wherever text reaches a database.
            expectError(
                try await platform.request(.PUT, "/auth/login", json: #"{"username":"ali\u0000ce","password":"password123"}"#), 422, code: 600,
                fields: ["username"], "NUL in a login"
            )
            expectError(try await platform.request(.POST, "/ai/chat/model", json: #"{"name":"m\u0000"}"#, token: token), 422, code: 600, fields: ["name"], "NUL in a name")
            expectError(try await platform.request(.PATCH, "/user/update", json: #"{"avatar":"a\u0000"}"#, token: token), 422, code: 600, fields: ["avatar"], "NUL in an avatar")
            expectError(try await platform.request(.GET, "/ai/usage?userId=%00", token: admin), 422, code: 600, fields: ["userId"], "NUL in a filter")
            expectError(try await platform.request(.GET, "/user/a%00b", token: admin), 404, "NUL in a path id")
            let key = try #require(try await platform.request(.POST, "/user/api_keys", json: #"{"name":"k"}"#, token: token).data["key"] as? String)
            let nulModel = try await platform.request(.POST, "/v1/chat/completions", json: #"{"model":"\u0000","messages":[{"role":"user","content":"hi"}]}"#, token: key)
            #expect(nulModel.status == 404, "\(nulModel.status) \(nulModel.json)")

            let wrongPassword = try await platform.login("alice", password: "not-the-password")
            let unknownUser = try await platform.login("nobody-here", password: "not-the-password")
            expectError(wrongPassword, 401, "wrong password")
            expectError(unknownUser, 401, "unknown user")
            #expect(wrongPassword.message == unknownUser.message)

            #expect(try await snapshot(platform, admin: admin) == before)
        }
    }

    @Test("expired, forged, other-algorithm and garbage tokens get 401", arguments: TestDatabaseKind.enabled)
    func badTokens(kind: TestDatabaseKind) async throws {
        try await PlatformUnderTest.with(kind) { platform in
            _ = try await platform.register("alice")
            let valid = try await platform.token("alice")
            let parts = valid.split(separator: ".").map(String.init)
            let payloadData = try #require(base64URLDecode(parts[1]))
            let payload = try #require(try JSONSerialization.jsonObject(with: payloadData) as? [String: Any])
            let now = Date().timeIntervalSince1970

            var expiredClaims = payload
            expiredClaims["iat"] = now - 7200
            expiredClaims["exp"] = now - 3600
            let expired = try sign(expiredClaims, algorithm: "HS256", secret: PlatformUnderTest.jwtSecret)
            let forged = try sign(payload, algorithm: "HS256", secret: "some-other-secret-0123456789abcdefghij")
            let otherAlgorithm = try sign(payload, algorithm: "HS512", secret: PlatformUnderTest.jwtSecret)
            let unsigned = [base64URL(Data(#"{"alg":"none","typ":"JWT"}"#.utf8)), parts[1], ""].joined(separator: ".")
            var adminClaims = payload
            adminClaims["role"] = "admin"
            let escalated = [parts[0], base64URL(try JSONSerialization.data(withJSONObject: adminClaims)), parts[2]].joined(separator: ".")

            for (name, token) in [("expired", expired), ("forged", forged), ("HS512", otherAlgorithm), ("alg none", unsigned), ("tampered", escalated), ("garbage", "not.a.token")] {
                let reply = try await platform.request(.GET, "/user/current", token: token)
                #expect(reply.status == 401, "\(name)")
                #expect(reply.json["statusCode"] as? Int == 401, "\(name)")
            }
            let noScheme = try await platform.request(.GET, "/user/current", headers: [("Authorization", valid)])
            #expect(noScheme.status == 401)
            #expect(try await platform.request(.GET, "/user/current", token: valid).status == 200)
        }
    }

    /// Everything the admin can see of the stored users.
    private func snapshot(_ platform: PlatformUnderTest, admin: String) async throws -> String {
        let reply = try await platform.request(.GET, "/user?pageSize=100", token: admin)
        let results = reply.data["results"] as? [[String: Any]] ?? []
        return results.map { user in
            ["id", "username", "avatar", "status", "role", "accessKey", "updatedAt"].map { "\(user[$0] ?? "")" }.joined(separator: "|")
        }.joined(separator: "\n")
    }
}

func base64URL(_ data: Data) -> String {
    data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
}

func base64URLDecode(_ text: String) -> Data? {
    var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    while base64.count % 4 != 0 { base64 += "=" }
    return Data(base64Encoded: base64)
}

/// A JWT signed with HMAC, written by hand so tests can make tokens the gateway must refuse.
func sign(_ claims: [String: Any], algorithm: String, secret: String) throws -> String {
    let header = base64URL(try JSONSerialization.data(withJSONObject: ["alg": algorithm, "typ": "JWT"]))
    let body = base64URL(try JSONSerialization.data(withJSONObject: claims))
    let input = Data("\(header).\(body)".utf8)
    let key = SymmetricKey(data: Data(secret.utf8))
    let signature: Data = algorithm == "HS512"
        ? Data(HMAC<SHA512>.authenticationCode(for: input, using: key))
        : Data(HMAC<SHA256>.authenticationCode(for: input, using: key))
    return "\(header).\(body).\(base64URL(signature))"
}
