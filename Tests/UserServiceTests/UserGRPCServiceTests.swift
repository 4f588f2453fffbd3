import AISaaSProtos
import FluentKit
import Foundation
import GRPCCore
import Platform
import SQLKit
import Testing
import TestSupport
@testable import UserService

@Suite("user service over gRPC")
struct UserGRPCServiceTests {
    @Test("register makes a 20/40 character key pair and never sends the hash or the secret in a UserModel", arguments: TestDatabaseKind.enabled)
    func registerKeys(kind: TestDatabaseKind) async throws {
        try await UserServiceHarness.run(kind) { service in
            let created = try await service.register("alice")
            #expect(created.user.username == "alice")
            #expect(created.user.role == .user)
            #expect(created.user.status == .enable)
            #expect(created.user.accessKey.count == 20)
            #expect(created.secretKey.count == 40)
            let alphanumeric = CharacterSet.alphanumerics
            #expect(created.secretKey.unicodeScalars.allSatisfy { alphanumeric.contains($0) && $0.isASCII })
            #expect(created.user.password.isEmpty)
            #expect(created.user.secretKey.isEmpty)

            let fetched = try await service.client.getUserById(.with { $0.id = created.user.id })
            #expect(fetched.password.isEmpty && fetched.secretKey.isEmpty)
            #expect(fetched.accessKey == created.user.accessKey)
            let byKey = try await service.client.getUserByAccessKey(.with { $0.accessKey = created.user.accessKey })
            #expect(byKey.id == created.user.id)
            let byName = try await service.client.getUserByName(.with { $0.username = "alice" })
            #expect(byName.id == created.user.id)

            // At rest the secret is sealed, and the password is a bcrypt hash.
            let record = try #require(try await UserRecord.find(created.user.id, on: service.database.database()))
            #expect(!record.sealedSecretKey.contains(created.secretKey))
            #expect(record.passwordHash.hasPrefix("$2"))
            let cipher = try SecretKeyCipher(masterKeyBase64: UserServiceHarness.masterKey)
            #expect(try cipher.open(record.sealedSecretKey, userId: created.user.id) == created.secretKey)
        }
    }

    @Test("CreateUser of the original contract answers a UserModel without secrets", arguments: TestDatabaseKind.enabled)
    func createUser(kind: TestDatabaseKind) async throws {
        try await UserServiceHarness.run(kind) { service in
            let model = try await service.client.createUser(.with {
                $0.username = "carol"
                $0.password = "password123"
            })
            #expect(model.username == "carol" && model.secretKey.isEmpty && model.password.isEmpty)
            let list = try await service.client.getUserModelList(.init())
            #expect(list.results.map(\.username).contains("carol"))
        }
    }

    @Test("a taken username is ALREADY_EXISTS and stores nothing", arguments: TestDatabaseKind.enabled)
    func duplicate(kind: TestDatabaseKind) async throws {
        try await UserServiceHarness.run(kind) { service in
            try await service.register("alice")
            let error = await rpcError { try await service.register("alice") }
            #expect(error?.code == .alreadyExists)
            #expect(try await service.manager.count() == 1)
        }
    }

    @Test("invalid fields are INVALID_ARGUMENT listing every field", arguments: TestDatabaseKind.enabled)
    func invalid(kind: TestDatabaseKind) async throws {
        try await UserServiceHarness.run(kind) { service in
            let error = try #require(await rpcError { try await service.register("ab", "short") })
            #expect(error.code == .invalidArgument)
            let json = try #require(error.metadata[stringValues: MetadataKey.errorViolations].first(where: { _ in true }))
            let violations = try JSONDecoder().decode([FieldViolation].self, from: Data(json.utf8))
            #expect(Set(violations.map(\.property)) == ["username", "password"])
            #expect(error.metadata[stringValues: MetadataKey.errorApplication].first(where: { _ in true }) == "user-service")
            #expect(try await service.manager.count() == 0)
        }
    }

    @Test("wrong password and unknown user fail alike; a disabled user is PERMISSION_DENIED", arguments: TestDatabaseKind.enabled)
    func verifyPassword(kind: TestDatabaseKind) async throws {
        try await UserServiceHarness.run(kind) { service in
            let created = try await service.register("alice")
            let ok = try await service.client.verifyPassword(.with { $0.username = "alice"; $0.password = "password123" })
            #expect(ok.id == created.user.id)

            let wrong = await rpcError { try await service.client.verifyPassword(.with { $0.username = "alice"; $0.password = "nope-nope" }) }
            let unknown = await rpcError { try await service.client.verifyPassword(.with { $0.username = "bob"; $0.password = "nope-nope" }) }
            #expect(wrong?.code == .unauthenticated)
            #expect(unknown?.code == .unauthenticated)
            #expect(wrong?.message == unknown?.message)

            _ = try await service.client.updateUser(.with { $0.id = created.user.id; $0.status = .disable })
            let disabled = await rpcError { try await service.client.verifyPassword(.with { $0.username = "alice"; $0.password = "password123" }) }
            #expect(disabled?.code == .permissionDenied)
        }
    }

    /// The gateway refuses a NUL in text; a caller of the service that sends one anyway gets
    /// INVALID_ARGUMENT where PostgreSQL refuses it (SQLSTATE 22021), never INTERNAL.
    @Test("text with a NUL character is a bad argument or not found, never an internal error", arguments: TestDatabaseKind.enabled)
    func nulInText(kind: TestDatabaseKind) async throws {
        try await UserServiceHarness.run(kind) { service in
            _ = try await service.register("alice")
            let byName = await rpcError { try await service.client.getUserByName(.with { $0.username = "ali\u{0}ce" }) }
            let login = await rpcError { try await service.client.verifyPassword(.with { $0.username = "ali\u{0}ce"; $0.password = "password123" }) }
            switch kind {
            case .postgres:
                #expect(byName?.code == .invalidArgument, "\(String(describing: byName))")
                #expect(login?.code == .invalidArgument, "\(String(describing: login))")
            case .sqlite:
                #expect(byName?.code == .notFound, "\(String(describing: byName))")
                #expect(login?.code == .unauthenticated, "\(String(describing: login))")
            }
            #expect(try await service.client.getUserByName(.with { $0.username = "alice" }).username == "alice")
        }
    }

    @Test("a deleted user's id, name and access key stop working at once", arguments: TestDatabaseKind.enabled)
    func softDelete(kind: TestDatabaseKind) async throws {
        try await UserServiceHarness.run(kind) { service in
            let created = try await service.register("alice")
            _ = try await service.client.deleteUser(.with { $0.id = created.user.id })
            #expect(await rpcError { try await service.client.getUserById(.with { $0.id = created.user.id }) }?.code == .notFound)
            #expect(await rpcError { try await service.client.getUserByName(.with { $0.username = "alice" }) }?.code == .notFound)
            #expect(await rpcError { try await service.client.getUserByAccessKey(.with { $0.accessKey = created.user.accessKey }) }?.code == .notFound)
            #expect(await rpcError { try await service.client.deleteUser(.with { $0.id = created.user.id }) }?.code == .notFound)
            let login = await rpcError { try await service.client.verifyPassword(.with { $0.username = "alice"; $0.password = "password123" }) }
            #expect(login?.code == .permissionDenied)
            // The name stays reserved, and every token of the user is revoked.
            #expect(await rpcError { try await service.register("alice") }?.code == .alreadyExists)
            let revocations = try await service.client.listRevocations(.with { $0.since = 0 })
            #expect(revocations.results.contains { $0.kind == .user && $0.subject == created.user.id })
        }
    }

    @Test("rotating keys replaces the pair; the old access key no longer resolves", arguments: TestDatabaseKind.enabled)
    func rotate(kind: TestDatabaseKind) async throws {
        try await UserServiceHarness.run(kind) { service in
            let created = try await service.register("alice")
            let rotated = try await service.client.rotateKeys(.with { $0.id = created.user.id })
            #expect(rotated.user.accessKey != created.user.accessKey)
            #expect(rotated.secretKey != created.secretKey && rotated.secretKey.count == 40)
            #expect(await rpcError { try await service.client.getUserByAccessKey(.with { $0.accessKey = created.user.accessKey }) }?.code == .notFound)
            #expect(try await service.client.getUserByAccessKey(.with { $0.accessKey = rotated.user.accessKey }).id == created.user.id)
        }
    }

    @Test("update changes only what it is given; a role change revokes the user's tokens", arguments: TestDatabaseKind.enabled)
    func update(kind: TestDatabaseKind) async throws {
        try await UserServiceHarness.run(kind) { service in
            let created = try await service.register("alice")
            _ = try await service.client.updateUser(.with { $0.id = created.user.id; $0.avatar = "https://example.com/a.png" })
            var fetched = try await service.client.getUserById(.with { $0.id = created.user.id })
            #expect(fetched.avatar == "https://example.com/a.png" && fetched.role == .user && fetched.status == .enable)
            #expect(try await service.client.listRevocations(.with { $0.since = 0 }).results.isEmpty)

            _ = try await service.client.updateUser(.with { $0.id = created.user.id; $0.role = .admin })
            fetched = try await service.client.getUserById(.with { $0.id = created.user.id })
            #expect(fetched.role == .admin && fetched.avatar == "https://example.com/a.png")
            #expect(try await service.client.listRevocations(.with { $0.since = 0 }).results.count == 1)

            _ = try await service.client.updateUser(.with { $0.id = created.user.id; $0.password = "another-password" })
            _ = try await service.client.verifyPassword(.with { $0.username = "alice"; $0.password = "another-password" })

            let bad = await rpcError { try await service.client.updateUser(.with { $0.id = created.user.id; $0.password = "x"; $0.accessKey = "short" }) }
            #expect(bad?.code == .invalidArgument)
            #expect(await rpcError { try await service.client.updateUser(.with { $0.id = "missing"; $0.avatar = "" }) }?.code == .notFound)
        }
    }

    @Test("concurrent edits decide from the row they write over: a user left disabled always had its tokens revoked", arguments: TestDatabaseKind.enabled)
    func concurrentEdits(kind: TestDatabaseKind) async throws {
        try await UserServiceHarness.run(kind) { service in
            let created = try await service.register("alice")
            let id = created.user.id
            for round in 0..<16 {
                try await service.manager.update(id: id, changes: UserChanges(status: .disabled))
                let before = try await service.manager.revocations(since: .distantPast).revocations.count
                // One admin enables the user while another disables it: whichever writes last
                // must have compared itself with the other's write.
                async let enabling: Void = service.manager.update(id: id, changes: UserChanges(status: .enabled))
                async let disabling: Void = service.manager.update(id: id, changes: UserChanges(status: .disabled))
                _ = try await (enabling, disabling)
                let revoked = try await service.manager.revocations(since: .distantPast).revocations.count - before
                if try await service.manager.user(id: id).status == .disabled {
                    #expect(revoked == 1, "round \(round): disabled after an enable without a revocation")
                } else {
                    #expect(revoked == 0, "round \(round)")
                }
            }
            // Rotations racing a new access key: each revokes the key it replaced, never one already gone.
            let keys = try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<4 {
                    group.addTask { _ = try await service.manager.rotateKeys(id: id) }
                    group.addTask {
                        try await service.manager.update(id: id, changes: UserChanges(accessKey: String(repeating: "k", count: 19) + "\(index)"))
                    }
                }
                try await group.waitForAll()
                return try await service.manager.revocations(since: .distantPast).revocations.filter { $0.kind == .accessKey }.map(\.subject)
            }
            #expect(keys.count == 8 && Set(keys).count == 8, "\(keys)")
            #expect(keys.contains(created.user.accessKey))
            #expect(!keys.contains(try await service.manager.user(id: id).accessKey))
        }
    }

    @Test("users are listed newest first, a page at a time", arguments: TestDatabaseKind.enabled)
    func pagination(kind: TestDatabaseKind) async throws {
        try await UserServiceHarness.run(kind) { service in
            for index in 0..<5 {
                try await service.register("user\(index)")
            }
            let page = try await service.client.listUsers(.with { $0.current = 2; $0.pageSize = 2 })
            #expect(page.pagination.total == 5)
            #expect(page.pagination.current == 2 && page.pagination.pageSize == 2)
            #expect(page.results.map(\.username) == ["user2", "user1"])
            let outOfRange = await rpcError { try await service.client.listUsers(.with { $0.pageSize = 101 }) }
            #expect(outOfRange?.code == .invalidArgument)
        }
    }

    @Test("revocations are listed from a time on, and expired ones are dropped", arguments: TestDatabaseKind.enabled)
    func revocations(kind: TestDatabaseKind) async throws {
        try await UserServiceHarness.run(kind) { service in
            let now = Date().millisecondsSince1970
            _ = try await service.client.revokeToken(.with { $0.kind = .token; $0.subject = "jti-1"; $0.expiresAt = now + 60_000 })
            _ = try await service.client.revokeToken(.with { $0.kind = .token; $0.subject = "jti-old"; $0.expiresAt = now - 1000 })
            let all = try await service.client.listRevocations(.with { $0.since = 0 })
            #expect(all.results.map(\.subject) == ["jti-1"])
            let later = try await service.client.listRevocations(.with { $0.since = all.serverTime + 1 })
            #expect(later.results.isEmpty)
        }
    }

    @Test("every change that ends a user's sessions raises the security stamp, in the revocation too; other changes do not", arguments: TestDatabaseKind.enabled)
    func securityStamps(kind: TestDatabaseKind) async throws {
        try await UserServiceHarness.run(kind) { service in
            let created = try await service.register("alice")
            let login = { try await service.client.verifyPassword(.with { $0.username = "alice"; $0.password = "password123" }) }
            #expect(try await login().securityStamp == 0)
            _ = try await service.client.updateUser(.with { $0.id = created.user.id; $0.avatar = "a.png" })
            _ = try await service.client.rotateKeys(.with { $0.id = created.user.id })
            #expect(try await login().securityStamp == 0, "an avatar or a new key pair ends no session")

            _ = try await service.client.updateUser(.with { $0.id = created.user.id; $0.role = .admin })
            #expect(try await login().securityStamp == 1)
            _ = try await service.client.updateUser(.with { $0.id = created.user.id; $0.password = "password123" })
            #expect(try await service.client.getUserById(.with { $0.id = created.user.id }).securityStamp == 2)
            // An explicit revocation of all the user's tokens raises it too.
            _ = try await service.client.revokeToken(.with {
                $0.kind = .user; $0.subject = created.user.id; $0.expiresAt = Date().millisecondsSince1970 + 60_000
            })
            _ = try await service.client.deleteUser(.with { $0.id = created.user.id })
            let stamps = try await service.client.listRevocations(.with { $0.since = 0 }).results
                .filter { $0.kind == .user && $0.subject == created.user.id }.map(\.securityStamp)
            #expect(stamps == [1, 2, 3, 4], "\(stamps)")
        }
    }

    @Test("revocations come a page at a time, in the order they were recorded, none twice or missed", arguments: TestDatabaseKind.enabled)
    func revocationPages(kind: TestDatabaseKind) async throws {
        try await UserServiceHarness.run(kind) { service in
            let now = Date().millisecondsSince1970
            for index in 0..<7 {
                _ = try await service.client.revokeToken(.with { $0.kind = .token; $0.subject = "jti-\(index)"; $0.expiresAt = now + 60_000 })
            }
            var seen: [String] = []
            var after = ""
            var pages = 0
            while true {
                let page = try await service.client.listRevocations(.with { $0.since = 0; $0.after = after; $0.limit = 3 })
                pages += 1
                #expect(page.results.count <= 3)
                seen += page.results.map(\.subject)
                guard page.more, let last = page.results.last else { break }
                after = last.id
            }
            #expect(pages == 3)
            #expect(seen == (0..<7).map { "jti-\($0)" })
        }
    }

    @Test("usernames are one name however their accents are typed, and invisible characters are refused", arguments: TestDatabaseKind.enabled)
    func usernameForms(kind: TestDatabaseKind) async throws {
        try await UserServiceHarness.run(kind) { service in
            // "José" with a combining accent registers as the precomposed name.
            let decomposed = "Jose\u{301}"
            let created = try await service.register(decomposed)
            #expect(Array(created.user.username.unicodeScalars) == Array("Jos\u{E9}".unicodeScalars))
            _ = try await service.client.verifyPassword(.with { $0.username = "Jos\u{E9}"; $0.password = "password123" })
            _ = try await service.client.verifyPassword(.with { $0.username = decomposed; $0.password = "password123" })
            #expect(await rpcError { try await service.register("Jos\u{E9}") }?.code == .alreadyExists)
            for hidden in ["admin\u{200B}", "\u{202E}nimda", "\u{FEFF}root", "pri\u{E000}vate"] {
                let refused = await rpcError { try await service.register(hidden) }
                #expect(refused?.code == .invalidArgument, "\(hidden.debugDescription)")
            }
            // An account stored decomposed, before names were normalized, still logs in, and its
            // name is still taken.
            let older = try await service.register("zoe-older")
            let sql = try #require(service.database.database() as? any SQLDatabase)
            try await sql.raw("UPDATE users SET username = \(bind: "Zoe\u{308}") WHERE id = \(bind: older.user.id)").run()
            _ = try await service.client.verifyPassword(.with { $0.username = "Zo\u{EB}"; $0.password = "password123" })
            #expect(await rpcError { try await service.register("Zo\u{EB}") }?.code == .alreadyExists)
        }
    }

    @Test("the first admin is created once, with a generated password when none is configured", arguments: TestDatabaseKind.enabled)
    func bootstrapAdmin(kind: TestDatabaseKind) async throws {
        try await UserServiceHarness.run(kind) { service in
            let created = try #require(try await service.manager.bootstrapAdmin(username: nil, password: nil))
            #expect(created.user.role == .admin && created.user.username == "admin")
            let password = try #require(created.generatedPassword)
            _ = try await service.client.verifyPassword(.with { $0.username = "admin"; $0.password = password })
            #expect(try await service.manager.bootstrapAdmin(username: nil, password: nil) == nil)
        }
    }
}

@Suite("user service caller policy")
struct CallerPolicyTests {
    private func metadata(userId: String, role: String) -> Metadata {
        var metadata: Metadata = [:]
        metadata.addString(userId, forKey: MetadataKey.userId)
        metadata.addString(role, forKey: MetadataKey.userRole)
        return metadata
    }

    @Test("a user acts only on their own account; admin-only methods refuse users")
    func userLimits() async throws {
        try await UserServiceHarness.run(.sqlite) { service in
            let alice = try await service.register("alice").user
            let bob = try await service.register("bobby").user
            let asAlice = metadata(userId: alice.id, role: "user")
            let client = service.client

            #expect(try await client.getUserById(.with { $0.id = alice.id }, metadata: asAlice).username == "alice")
            #expect(await rpcError { try await client.getUserById(.with { $0.id = bob.id }, metadata: asAlice) }?.code == .permissionDenied)
            #expect(await rpcError { try await client.rotateKeys(.with { $0.id = bob.id }, metadata: asAlice) }?.code == .permissionDenied)
            #expect(await rpcError { try await client.updateUser(.with { $0.id = bob.id; $0.avatar = "x" }, metadata: asAlice) }?.code == .permissionDenied)
            #expect(await rpcError { try await client.updateUser(.with { $0.id = alice.id; $0.role = .admin }, metadata: asAlice) }?.code == .permissionDenied)
            #expect(await rpcError { try await client.deleteUser(.with { $0.id = bob.id }, metadata: asAlice) }?.code == .permissionDenied)
            #expect(await rpcError { try await client.listUsers(.with { $0.pageSize = 10 }, metadata: asAlice) }?.code == .permissionDenied)
            _ = try await client.updateUser(.with { $0.id = alice.id; $0.avatar = "mine" }, metadata: asAlice)

            // Nothing the refused calls asked for happened.
            let bobNow = try await client.getUserById(.with { $0.id = bob.id })
            #expect(bobNow.accessKey == bob.accessKey && bobNow.avatar.isEmpty)
            #expect(try await client.getUserById(.with { $0.id = alice.id }).role == .user)

            let asAdmin = metadata(userId: "some-admin", role: "admin")
            #expect(try await client.listUsers(.with { $0.pageSize = 10 }, metadata: asAdmin).pagination.total == 2)
            _ = try await client.deleteUser(.with { $0.id = bob.id }, metadata: asAdmin)
        }
    }

    @Test("a role the platform does not know is refused, not taken for a call without a role (which the services trust)")
    func unknownRole() async throws {
        try await UserServiceHarness.run(.sqlite) { service in
            let alice = try await service.register("alice").user
            for role in ["superuser", "Admin", "administrator"] {
                let error = await rpcError { try await service.client.listUsers(.with { $0.pageSize = 10 }, metadata: metadata(userId: alice.id, role: role)) }
                #expect(error?.code == .unauthenticated, "\(role)")
                let deleting = await rpcError { try await service.client.deleteUser(.with { $0.id = alice.id }, metadata: metadata(userId: "x", role: role)) }
                #expect(deleting?.code == .unauthenticated, "\(role)")
            }
            #expect(try await service.client.getUserById(.with { $0.id = alice.id }).username == "alice")
        }
    }
}
