import AISaaSProtos
import Foundation
import GRPCCore
import Platform
import SQLKit
import Synchronization
import Testing
import TestSupport
@testable import UserService

/// VerifySignature over gRPC, with the worked example of aksk-v1.md: a registered user is given
/// that example's key pair (through the admin UpdateUser), so its documented signature must verify.
@Suite("user service: VerifySignature")
struct SignatureVerificationTests {
    static let accessKey = "Zx8Kq2LmN4pR6tV8wY0a"
    static let secretKey = "h7Gf3Dk9Lq2Wm5Np8Rt1Vx4Zb6Cj0Ey3Ua7Io9Pq"
    static let prefix = "cc-auth-v1/Zx8Kq2LmN4pR6tV8wY0a/2026-01-02T03:04:05Z/300"
    static let canonicalRequest =
        "GET\n/ai/chat/model/%E6%B5%8B%E8%AF%95\ntext10=test&text1=%E6%B5%8B%E8%AF%95&text=\ncontent-type:application%2Fjson\nhost:api.example.com\nx-cc-meta-data:a%20b"
    static let signature = "95d4735429620d489d13b642212b3819579e72281db898f0b0c2fa034b6eff7e"

    static func request(
        accessKey: String = accessKey, signature: String = signature, canonicalRequest: String = canonicalRequest,
        nonce: String? = nil, expiresIn: TimeInterval = 300
    ) -> Grpc_User_V1_VerifySignatureRequest {
        .with {
            $0.accessKey = accessKey
            $0.authStringPrefix = prefix
            $0.canonicalRequest = canonicalRequest
            $0.signature = signature
            if let nonce { $0.nonce = nonce }
            $0.nonceExpiresAt = Date().addingTimeInterval(expiresIn).millisecondsSince1970
        }
    }

    /// Registers a user and gives it the worked example's key pair.
    static func exampleUser(_ service: UserServiceHarness, _ name: String = "device-owner") async throws -> Grpc_User_V1_UserModel {
        let created = try await service.register(name)
        _ = try await service.client.updateUser(.with {
            $0.id = created.user.id
            $0.accessKey = accessKey
            $0.secretKey = secretKey
        })
        return created.user
    }

    static func reason(_ error: RPCError?) -> String? {
        error?.metadata[stringValues: MetadataKey.errorReason].first(where: { _ in true })
    }

    @Test("the documented signature verifies and answers the key's owner, without secrets", arguments: TestDatabaseKind.enabled)
    func matches(kind: TestDatabaseKind) async throws {
        try await UserServiceHarness.run(kind) { service in
            let owner = try await Self.exampleUser(service)
            let user = try await service.client.verifySignature(Self.request())
            #expect(user.id == owner.id && user.username == "device-owner" && user.accessKey == Self.accessKey)
            #expect(user.secretKey.isEmpty && user.password.isEmpty)
        }
    }

    @Test("a wrong signature or a changed request is UNAUTHENTICATED SignatureDoesNotMatch", arguments: TestDatabaseKind.enabled)
    func mismatch(kind: TestDatabaseKind) async throws {
        try await UserServiceHarness.run(kind) { service in
            _ = try await Self.exampleUser(service)
            let flipped = "0" + Self.signature.dropFirst()
            for request in [
                Self.request(signature: flipped),
                Self.request(signature: "not hex"),
                Self.request(canonicalRequest: Self.canonicalRequest.replacingOccurrences(of: "GET", with: "PUT")),
            ] {
                let error = await rpcError { try await service.client.verifySignature(request) }
                #expect(error?.code == .unauthenticated)
                #expect(Self.reason(error) == "SignatureDoesNotMatch")
                #expect(error?.message.contains(Self.secretKey) == false)
            }
        }
    }

    @Test("an unknown, malformed or deleted user's access key is NOT_FOUND InvalidAccessKeyId", arguments: TestDatabaseKind.enabled)
    func unknownKey(kind: TestDatabaseKind) async throws {
        try await UserServiceHarness.run(kind) { service in
            for accessKey in [Self.accessKey, "short", ""] {
                let error = await rpcError { try await service.client.verifySignature(Self.request(accessKey: accessKey)) }
                #expect(error?.code == .notFound)
                #expect(Self.reason(error) == "InvalidAccessKeyId")
            }
            let owner = try await Self.exampleUser(service)
            _ = try await service.client.deleteUser(.with { $0.id = owner.id })
            let deleted = await rpcError { try await service.client.verifySignature(Self.request()) }
            #expect(deleted?.code == .notFound)
            #expect(Self.reason(deleted) == "InvalidAccessKeyId")
        }
    }

    @Test("a disabled user is PERMISSION_DENIED AccessDenied, told only to a caller whose signature matched", arguments: TestDatabaseKind.enabled)
    func disabled(kind: TestDatabaseKind) async throws {
        try await UserServiceHarness.run(kind) { service in
            let owner = try await Self.exampleUser(service)
            _ = try await service.client.updateUser(.with { $0.id = owner.id; $0.status = .disable })
            let error = await rpcError { try await service.client.verifySignature(Self.request(nonce: "nonce-0001")) }
            #expect(error?.code == .permissionDenied)
            #expect(Self.reason(error) == "AccessDenied")
            let forged = await rpcError { try await service.client.verifySignature(Self.request(signature: String(repeating: "a", count: 64))) }
            #expect(Self.reason(forged) == "SignatureDoesNotMatch")

            // The refused request did not use up its nonce.
            _ = try await service.client.updateUser(.with { $0.id = owner.id; $0.status = .enable })
            #expect(try await service.client.verifySignature(Self.request(nonce: "nonce-0001")).id == owner.id)
        }
    }

    @Test("a nonce is accepted once; another nonce, or the same after its expiry, is fine", arguments: TestDatabaseKind.enabled)
    func nonces(kind: TestDatabaseKind) async throws {
        try await UserServiceHarness.run(kind) { service in
            _ = try await Self.exampleUser(service)
            _ = try await service.client.verifySignature(Self.request(nonce: "nonce-0001"))
            let replay = await rpcError { try await service.client.verifySignature(Self.request(nonce: "nonce-0001")) }
            #expect(replay?.code == .alreadyExists)
            #expect(Self.reason(replay) == "NonceReused")
            _ = try await service.client.verifySignature(Self.request(nonce: "nonce-0002"))
            // Without a nonce nothing is recorded, so the same request passes again.
            _ = try await service.client.verifySignature(Self.request())
            _ = try await service.client.verifySignature(Self.request())

            // A wrong signature does not record its nonce.
            _ = await rpcError { try await service.client.verifySignature(Self.request(signature: String(repeating: "b", count: 64), nonce: "nonce-0003")) }
            _ = try await service.client.verifySignature(Self.request(nonce: "nonce-0003"))

            // Once the signature it came with has expired (and the gateways' largest clock skew
            // has passed too), a nonce may be used again.
            _ = try await service.client.verifySignature(Self.request(nonce: "nonce-0004", expiresIn: -UserManager.nonceRetentionMargin - 1))
            _ = try await service.client.verifySignature(Self.request(nonce: "nonce-0004"))
            #expect(await rpcError { try await service.client.verifySignature(Self.request(nonce: "nonce-0004")) }?.code == .alreadyExists)

            let tooLong = await rpcError { try await service.client.verifySignature(Self.request(nonce: String(repeating: "n", count: 65))) }
            #expect(tooLong?.code == .invalidArgument)
        }
    }

    @Test("concurrent uses of one nonce: exactly one wins", arguments: TestDatabaseKind.enabled)
    func race(kind: TestDatabaseKind) async throws {
        try await UserServiceHarness.run(kind) { service in
            _ = try await Self.exampleUser(service)
            let outcomes = try await withThrowingTaskGroup(of: RPCError.Code?.self) { group in
                for _ in 0..<8 {
                    group.addTask { await rpcError { try await service.client.verifySignature(Self.request(nonce: "raced-nonce")) }?.code }
                }
                return try await group.reduce(into: [RPCError.Code?]()) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 == nil }.count == 1)
            #expect(outcomes.filter { $0 == .alreadyExists }.count == 7)
        }
    }

    @Test("a nonce is kept past its signature's expiry, for gateways whose clocks run behind", arguments: TestDatabaseKind.enabled)
    func nonceOutlivesItsSignature(kind: TestDatabaseKind) async throws {
        try await UserServiceHarness.run(kind) { service in
            let clock = Mutex(Date())
            let manager = UserManager(
                repository: FluentUserRepository(database: service.database), hasher: PasswordHasher(cost: 4),
                cipher: try SecretKeyCipher(masterKeyBase64: UserServiceHarness.masterKey), now: { clock.withLock { $0 } }
            )
            let expiresAt = clock.withLock { $0 } + 60
            try await manager.recordNonce(accessKey: Self.accessKey, nonce: "late-nonce", expiresAt: expiresAt)
            // Ten minutes after the signature expired here, a gateway ten minutes behind still takes it.
            clock.withLock { $0 = expiresAt + 600 }
            await #expect(throws: DomainError.self) {
                try await manager.recordNonce(accessKey: Self.accessKey, nonce: "late-nonce", expiresAt: expiresAt)
            }
            clock.withLock { $0 = expiresAt + UserManager.nonceRetentionMargin + 1 }
            try await manager.recordNonce(accessKey: Self.accessKey, nonce: "late-nonce", expiresAt: expiresAt)
        }
    }

    @Test("expired nonces are purged; those in force stay", arguments: TestDatabaseKind.enabled)
    func purge(kind: TestDatabaseKind) async throws {
        try await UserServiceHarness.run(kind) { service in
            let repository = FluentUserRepository(database: service.database)
            let now = Date()
            #expect(try await repository.recordNonce(accessKey: Self.accessKey, nonce: "old-nonce", expiresAt: now - 10, now: now - 20))
            #expect(try await repository.recordNonce(accessKey: Self.accessKey, nonce: "live-nonce", expiresAt: now + 60, now: now))
            #expect(try await repository.recordNonce(accessKey: Self.accessKey, nonce: "live-nonce", expiresAt: now + 60, now: now) == false)
            // The same nonce under another key is another pair.
            #expect(try await repository.recordNonce(accessKey: "Other0Other0Other0Ot", nonce: "live-nonce", expiresAt: now + 60, now: now))
            try await repository.deleteNonces(expiredBefore: now)
            let sql = try #require(service.database.database() as? any SQLDatabase)
            let rows = try await sql.raw("SELECT nonce FROM signature_nonces ORDER BY nonce").all()
            #expect(try rows.map { try $0.decode(column: "nonce", as: String.self) } == ["live-nonce", "live-nonce"])
        }
    }
}
