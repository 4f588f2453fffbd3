import Foundation
import Testing

/// Registration, login and the account routes through the gateway's router, against the user
/// service in process.
@Suite("account routes", .serialized)
struct AccountRoutesTests {
    @Test("registering answers the key pair once; the same name again is a conflict; bad names and passwords get 422")
    func registration() async throws {
        try await GatewayHarness.with { harness in
            let created = try await harness.send(.post, "/user/register", json: #"{"username":"pia","password":"password123"}"#)
            #expect(created.status == 200, "\(created.text)")
            let accessKey = try #require(created.data["accessKey"] as? String)
            let secretKey = try #require(created.data["secretKey"] as? String)
            #expect(!accessKey.isEmpty && !secretKey.isEmpty)
            #expect(created.data["password"] == nil && !created.text.contains("password123"))

            #expect(try await harness.send(.post, "/user/register", json: #"{"username":"pia","password":"password456"}"#).status == 409)
            for (body, field) in [
                (#"{"username":"pi","password":"password123"}"#, "username"),
                (#"{"username":"pia2","password":"short"}"#, "password"),
                (#"{"password":"password123"}"#, "username"),
                (#"{"username":["pia3"],"password":"password123"}"#, "username"),
            ] {
                let refused = try await harness.send(.post, "/user/register", json: body)
                #expect(refused.status == 422, "\(body): \(refused.text)")
                #expect(refused.metaProperties.contains(field), "\(body): \(refused.text)")
            }
            let token = try await harness.registeredUser("quinn")
            let profile = try await harness.send(.get, "/user/current", token: token)
            #expect(profile.data["username"] as? String == "quinn")
            #expect(profile.data["secretKey"] == nil, "the profile shows the secret key")
        }
    }

    @Test("a wrong password is 401 without saying which part was wrong; logging out ends the token at once")
    func loginAndLogout() async throws {
        try await GatewayHarness.with { harness in
            let token = try await harness.registeredUser("rui")
            let wrongPassword = try await harness.send(.put, "/auth/login", json: #"{"username":"rui","password":"password999"}"#)
            let noSuchUser = try await harness.send(.put, "/auth/login", json: #"{"username":"nobody-here","password":"password123"}"#)
            #expect(wrongPassword.status == 401 && noSuchUser.status == 401)
            #expect(wrongPassword.message == noSuchUser.message)

            #expect(try await harness.send(.get, "/user/current", token: token).status == 200)
            #expect(try await harness.send(.delete, "/auth/logout", token: token).status == 200)
            #expect(try await harness.send(.get, "/user/current", token: token).status == 401)
        }
    }

    @Test("a new password answers a fresh token and ends the old ones; new keys replace the old pair")
    func passwordAndKeys() async throws {
        try await GatewayHarness.with { harness in
            let token = try await harness.registeredUser("sam")
            let changed = try await harness.send(.patch, "/user/update", json: #"{"password":"password456"}"#, token: token)
            #expect(changed.status == 200, "\(changed.text)")
            let fresh = try #require((changed.data["session"] as? [String: Any])?["accessToken"] as? String ?? changed.data["accessToken"] as? String)
            #expect(try await harness.send(.get, "/user/current", token: token).status == 401)
            #expect(try await harness.send(.get, "/user/current", token: fresh).status == 200)
            #expect(try await harness.send(.put, "/auth/login", json: #"{"username":"sam","password":"password456"}"#).status == 200)

            let before = try await harness.send(.get, "/user/current", token: fresh).data["accessKey"] as? String
            let rotated = try await harness.send(.patch, "/user/update_keys", token: fresh)
            #expect(rotated.status == 200)
            let after = try #require(rotated.data["accessKey"] as? String)
            #expect(after != before && rotated.data["secretKey"] is String)
        }
    }

    @Test("admins list, disable and delete users, but not themselves; users may do none of it")
    func administration() async throws {
        try await GatewayHarness.with { harness in
            let admin = try await harness.adminToken()
            let user = try await harness.registeredUser("tia")
            let userId = try #require(try await harness.send(.get, "/user/current", token: user).data["id"] as? String)
            let adminId = try #require(try await harness.send(.get, "/user/current", token: admin).data["id"] as? String)

            let refused = try await harness.send(.get, "/user", token: user)
            #expect(refused.status == 403 && refused.message == "this route is for admins only", "\(refused.text)")
            #expect(refused.json["statusCode"] as? Int == 403)
            #expect(try await harness.send(.delete, "/user/\(adminId)", token: user).status == 403)
            let listed = try await harness.send(.get, "/user?pageSize=50", token: admin)
            let names = (listed.data["results"] as? [[String: Any]] ?? []).compactMap { $0["username"] as? String }
            #expect(Set(names) == [GatewayHarness.adminUsername, "tia"])

            #expect(try await harness.send(.patch, "/user/update_security", json: #"{"id":"\#(adminId)","role":"user"}"#, token: admin).status == 403)
            #expect(try await harness.send(.delete, "/user/\(adminId)", token: admin).status == 403)

            // Disabling ends the user's tokens at once.
            let disabled = try await harness.send(.patch, "/user/update_security", json: #"{"id":"\#(userId)","status":"disable"}"#, token: admin)
            #expect(disabled.status == 200, "\(disabled.text)")
            #expect(try await harness.send(.get, "/user/current", token: user).status == 401)
            #expect(try await harness.send(.put, "/auth/login", json: #"{"username":"tia","password":"password123"}"#).status != 200)

            #expect(try await harness.send(.delete, "/user/\(userId)", token: admin).status == 200)
            #expect(try await harness.send(.get, "/user/\(userId)", token: admin).status == 404)
        }
    }
}
