import Foundation
import Testing
import TestSupport

@Suite("account flows over HTTP", .serialized)
struct AccountFlowTests {
    @Test("register → login → current → update → update_keys → logout → token refused", arguments: TestDatabaseKind.enabled)
    func userJourney(kind: TestDatabaseKind) async throws {
        try await PlatformUnderTest.with(kind) { platform in
            let registered = try await platform.register("alice")
            #expect(registered.status == 200)
            #expect(registered.json["statusCode"] as? Int == 200 && registered.json["code"] as? Int == 0)
            #expect(registered.message == "success")
            let secret = try #require(registered.data["secretKey"] as? String)
            let accessKey = try #require(registered.data["accessKey"] as? String)
            #expect(secret.count == 40 && accessKey.count == 20)
            #expect(registered.data["password"] == nil)

            let login = try await platform.login("alice")
            #expect(login.status == 200)
            var token = try #require(login.data["accessToken"] as? String)

            let current = try await platform.request(.GET, "/user/current", token: token)
            #expect(current.status == 200)
            #expect(current.data["username"] as? String == "alice")
            #expect(current.data["accessKey"] as? String == accessKey)
            #expect(current.data["secretKey"] == nil && current.data["password"] == nil)
            #expect(current.data["role"] as? Int == 1 && current.data["status"] as? Int == 1)

            // Unknown fields never take effect: role and status stay as they were.
            let updated = try await platform.request(
                .PATCH, "/user/update", json: #"{"avatar":"https://img.example/a.png","role":0,"status":0}"#, token: token
            )
            #expect(updated.status == 200)
            #expect(updated.data["avatar"] as? String == "https://img.example/a.png")
            #expect(updated.data["role"] as? Int == 1 && updated.data["status"] as? Int == 1)

            // A new password ends every session of the old one, this one included; the answer
            // carries the token that replaces it.
            let otherSession = try await platform.token("alice")
            let changedPassword = try await platform.request(.PATCH, "/user/update", json: #"{"password":"new-password-9"}"#, token: token)
            #expect(changedPassword.status == 200)
            #expect(changedPassword.data["username"] as? String == "alice")
            token = try #require(changedPassword.data["accessToken"] as? String)
            #expect(changedPassword.data["tokenType"] as? String == "Bearer" && changedPassword.data["expiresAt"] is Int)
            #expect(try await platform.request(.GET, "/user/current", token: token).status == 200)
            #expect(try await platform.request(.GET, "/user/current", token: otherSession).status == 401)
            #expect(try await platform.login("alice").status == 401)
            #expect(try await platform.login("alice", password: "new-password-9").status == 200)
            // Changing only the avatar leaves tokens alone and answers no new one.
            let avatarOnly = try await platform.request(.PATCH, "/user/update", json: #"{"avatar":"b.png"}"#, token: token)
            #expect(avatarOnly.status == 200 && avatarOnly.data["accessToken"] == nil)
            #expect(try await platform.request(.GET, "/user/current", token: token).status == 200)

            let keys = try await platform.request(.PATCH, "/user/update_keys", token: token)
            #expect(keys.status == 200)
            let newKey = try #require(keys.data["accessKey"] as? String)
            #expect(newKey != accessKey && (keys.data["secretKey"] as? String)?.count == 40)
            let afterKeys = try await platform.request(.GET, "/user/current", token: token)
            #expect(afterKeys.data["accessKey"] as? String == newKey)

            let logout = try await platform.request(.DELETE, "/auth/logout", token: token)
            #expect(logout.status == 200)
            #expect(logout.json.keys.contains("data") && logout.json["data"] is NSNull)
            let refused = try await platform.request(.GET, "/user/current", token: token)
            #expect(refused.status == 401)
            #expect(refused.json["application"] as? String == "gateway")
        }
    }

    @Test("admin lists, reads, disables, re-enables and deletes users", arguments: TestDatabaseKind.enabled)
    func adminFlows(kind: TestDatabaseKind) async throws {
        try await PlatformUnderTest.with(kind) { platform in
            let admin = try await platform.adminToken()
            var ids: [String] = []
            for name in ["bob", "carol", "dave"] {
                ids.append(try #require(try await platform.register(name).data["id"] as? String))
            }
            let bobToken = try await platform.token("bob")

            let page = try await platform.request(.GET, "/user?current=1&pageSize=2", token: admin)
            #expect(page.status == 200)
            let results = try #require(page.data["results"] as? [[String: Any]])
            let pagination = try #require(page.data["pagination"] as? [String: Any])
            #expect(results.count == 2)
            #expect(pagination["total"] as? Int == 4 && pagination["current"] as? Int == 1 && pagination["pageSize"] as? Int == 2)
            #expect(results.first?["username"] as? String == "dave")

            let one = try await platform.request(.GET, "/user/\(ids[0])", token: admin)
            #expect(one.status == 200 && one.data["username"] as? String == "bob")
            #expect(try await platform.request(.GET, "/user/nobody", token: admin).status == 404)

            // Non-admins and anonymous callers are kept out.
            #expect(try await platform.request(.GET, "/user", token: bobToken).status == 403)
            #expect(try await platform.request(.GET, "/user").status == 401)
            #expect(try await platform.request(.DELETE, "/user/\(ids[1])", token: bobToken).status == 403)

            // Disabling: tokens stop working and login answers 403.
            let disabled = try await platform.request(.PATCH, "/user/update_security", json: #"{"id":"\#(ids[0])","status":"disable"}"#, token: admin)
            #expect(disabled.status == 200 && disabled.data["status"] as? Int == 0)
            #expect(try await platform.request(.GET, "/user/current", token: bobToken).status == 401)
            #expect(try await platform.login("bob").status == 403)
            let enabled = try await platform.request(.PATCH, "/user/update_security", json: #"{"id":"\#(ids[0])","status":1,"role":"admin"}"#, token: admin)
            #expect(enabled.status == 200 && enabled.data["status"] as? Int == 1 && enabled.data["role"] as? Int == 0)
            let bobAdmin = try await platform.token("bob")
            #expect(try await platform.request(.GET, "/user", token: bobAdmin).status == 200)

            // An admin cannot lock themselves out.
            let adminId = try #require(try await platform.request(.GET, "/user/current", token: admin).data["id"] as? String)
            #expect(try await platform.request(.PATCH, "/user/update_security", json: #"{"id":"\#(adminId)","role":1}"#, token: admin).status == 403)
            #expect(try await platform.request(.DELETE, "/user/\(adminId)", token: admin).status == 403)

            // Deleting: the user's token, login and record are gone.
            let carolToken = try await platform.token("carol")
            #expect(try await platform.request(.DELETE, "/user/\(ids[1])", token: admin).status == 200)
            #expect(try await platform.request(.GET, "/user/current", token: carolToken).status == 401)
            #expect(try await platform.login("carol").status == 403)
            #expect(try await platform.request(.GET, "/user/\(ids[1])", token: admin).status == 404)
            #expect(try await platform.register("carol").status == 409)
            let after = try await platform.request(.GET, "/user", token: admin)
            #expect((after.data["pagination"] as? [String: Any])?["total"] as? Int == 3)
        }
    }

    @Test("health names every instance; docs are served; every answer has an id and security headers")
    func systemRoutes() async throws {
        try await PlatformUnderTest.with(.sqlite) { platform in
            let health = try await platform.request(.GET, "/health")
            #expect(health.status == 200)
            let instances = try #require(health.data["instances"] as? [[String: Any]])
            #expect(Set(instances.compactMap { $0["service"] as? String }) == ["user-service", "ai-service"])
            #expect(instances.allSatisfy { $0["status"] as? String == "SERVING" })

            let generated = try #require(health.headers.first(name: "x-request-id"))
            #expect(!generated.isEmpty)
            #expect(health.headers.first(name: "x-content-type-options") == "nosniff")
            #expect(health.headers.first(name: "x-frame-options") == "DENY")
            let adopted = try await platform.request(.GET, "/user/current", headers: [("x-request-id", "client-chosen-id-42")])
            #expect(adopted.headers.first(name: "x-request-id") == "client-chosen-id-42")
            #expect(adopted.json["requestId"] as? String == "client-chosen-id-42")

            let document = try await platform.request(.GET, "/openapi.json")
            #expect(document.status == 200)
            #expect((document.json["openapi"] as? String)?.hasPrefix("3.") == true)
            let page = try await platform.request(.GET, "/api")
            #expect(page.status == 200 && String(decoding: page.body, as: UTF8.self).contains("/openapi.json"))
        }
    }

    @Test("CORS answers only the configured origins")
    func cors() async throws {
        try await PlatformUnderTest.with(.sqlite, settings: ["CORS_ALLOWED_ORIGINS": "https://app.example.com"]) { platform in
            let preflight = try await platform.request(.OPTIONS, "/user/current", headers: [
                ("Origin", "https://app.example.com"), ("Access-Control-Request-Method", "GET"),
            ])
            #expect(preflight.headers.first(name: "access-control-allow-origin") == "https://app.example.com")
            let other = try await platform.request(.GET, "/health", headers: [("Origin", "https://evil.example.com")])
            #expect(other.headers.first(name: "access-control-allow-origin") == nil)
        }
    }

    @Test("failed logins are throttled per username with Retry-After")
    func throttle() async throws {
        try await PlatformUnderTest.with(.sqlite, settings: ["LOGIN_MAX_FAILURES_PER_USERNAME": "3"]) { platform in
            _ = try await platform.register("erin")
            for _ in 0..<3 {
                #expect(try await platform.login("erin", password: "wrong-password").status == 401)
            }
            let throttled = try await platform.login("erin")
            #expect(throttled.status == 429)
            let retryAfter = try #require(throttled.headers.first(name: "retry-after").flatMap(Int.init))
            #expect(retryAfter > 0)
            // Another username from the same address is not affected yet.
            _ = try await platform.register("frank")
            #expect(try await platform.login("frank").status == 200)
        }
    }

    @Test("registrations from one address are throttled with Retry-After; ones that reached no user service do not count")
    func registrationThrottle() async throws {
        try await PlatformUnderTest.with(.sqlite, settings: ["REGISTRATION_MAX_PER_ADDRESS": "2"]) { platform in
            let body = { (name: String) in #"{"username":"\#(name)","password":"password123"}"# }
            #expect(try await platform.request(.POST, "/user/register", json: body("reg-one")).status == 200)
            // A name already taken still cost a password hash: it counts.
            #expect(try await platform.request(.POST, "/user/register", json: body("reg-one")).status == 409)
            let throttled = try await platform.request(.POST, "/user/register", json: body("reg-three"))
            #expect(throttled.status == 429, "\(throttled.status) \(throttled.message)")
            let retryAfter = try #require(throttled.headers.first(name: "retry-after").flatMap(Int.init))
            #expect(retryAfter > 0)
            // Logging in is not affected.
            #expect(try await platform.login("reg-one").status == 200)
        }
    }
}
