import AISaaSProtos
import AKSKSigning
import Foundation
import GRPCCore
import GRPCInProcessTransport
import Logging
import Platform
import Synchronization
import Testing
import TestSupport
import UserService
@testable import Gateway

/// Counts the user service's calls by method.
private final class CallCounter: ServerInterceptor {
    private let calls = Mutex<[String: Int]>([:])

    func count(_ method: MethodDescriptor) -> Int { calls.withLock { $0[method.fullyQualifiedMethod] ?? 0 } }

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @concurrent @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        calls.withLock { $0[context.descriptor.fullyQualifiedMethod, default: 0] += 1 }
        return try await next(request, context)
    }
}

/// A user service over SQLite, its client, and the gateway's signature verifier.
private struct Harness {
    let manager: UserManager
    let users: any Grpc_User_V1_UserService.ClientProtocol
    let verifier: SignatureVerifier
    let revocations: RevocationList
    let sync: RevocationSync
    let counter: CallCounter

    static let derive = Grpc_User_V1_UserService.Method.VerifySignatureForKey.descriptor
    static let listRevocations = Grpc_User_V1_UserService.Method.ListRevocations.descriptor
    static let recordNonce = Grpc_User_V1_UserService.Method.RecordNonce.descriptor

    static func with(_ body: (Harness) async throws -> Void) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let logger = Logger(label: "signature-verifier-test")
        let database = try ServiceDatabase(location: .sqlite(path: directory.path + "/user.sqlite"), migrations: UserMigrations.all, logger: logger)
        try await database.migrate()
        let manager = UserManager(
            repository: FluentUserRepository(database: database), hasher: PasswordHasher(cost: 4),
            cipher: try SecretKeyCipher(masterKeyBase64: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
        )
        let counter = CallCounter()
        let transport = InProcessTransport()
        do {
            try await withGRPCServer(
                transport: transport.server, services: [UserGRPCService(users: manager)],
                interceptors: [counter, RequestScopeServerInterceptor(application: "user-service", logger: logger)]
            ) { _ in
                try await withGRPCClient(transport: transport.client) { client in
                    let users = Grpc_User_V1_UserService.Client(wrapping: client)
                    let revocations = RevocationList()
                    // Not a test of the deadline: the whole suite starting at once on two cores took longer than 2 s.
                    let sync = RevocationSync(users: users, revocations: revocations, callTimeout: .seconds(30))
                    try await sync.refresh()
                    let verifier = SignatureVerifier(users: users, revocations: revocations, maxRevocationAge: .seconds(60))
                    try await body(Harness(manager: manager, users: users, verifier: verifier, revocations: revocations, sync: sync, counter: counter))
                }
            }
        } catch {
            await database.shutdown()
            throw error
        }
        await database.shutdown()
    }

    /// A request of `path` signed with the pair at `timestamp` (the prefix is the same for the same second).
    static func signed(
        _ path: String, accessKey: String, secretKey: String, timestamp: Date, nonce: String? = nil
    ) -> SignatureVerification {
        let prefix = CCAuthV1.authStringPrefix(accessKey: accessKey, timestamp: CCAuthTimestamp.format(timestamp), expirationSeconds: "1800")
        let canonical = "POST\n\(path)\n\nhost:localhost" + (nonce.map { "\nx-cc-nonce:\($0)" } ?? "")
        return SignatureVerification(
            accessKey: accessKey, authStringPrefix: prefix, canonicalRequest: canonical,
            signature: CCAuthV1.signature(secretKey: secretKey, authStringPrefix: prefix, canonicalRequest: canonical),
            nonce: nonce, expiresAt: timestamp.addingTimeInterval(1800)
        )
    }
}

private func reason(of call: () async throws -> SignatureOwner) async -> String? {
    do {
        _ = try await call()
        return nil
    } catch let error as RPCError {
        return error.metadata[stringValues: MetadataKey.errorReason].first(where: { _ in true }) ?? "\(error.code)"
    } catch {
        return "\(error)"
    }
}

@Suite("cc-auth-v1 signing keys kept by the gateway")
struct SignatureVerifierTests {
    @Test("requests with a prefix already seen are checked without the user service; a wrong signature still goes there")
    func keptKeySkipsTheCall() async throws {
        try await Harness.with { harness in
            let alice = try await harness.manager.register(username: "alice", password: "password123")
            let now = Date()
            let first = Harness.signed("/a", accessKey: alice.user.accessKey, secretKey: alice.secretKey, timestamp: now)
            #expect(try await harness.verifier.verify(first).userId == alice.user.id)
            let second = Harness.signed("/b", accessKey: alice.user.accessKey, secretKey: alice.secretKey, timestamp: now)
            #expect(try await harness.verifier.verify(second).userId == alice.user.id)
            #expect(harness.counter.count(Harness.derive) == 1)

            var forged = second
            forged.signature = String(repeating: "0", count: 64)
            #expect(await reason { try await harness.verifier.verify(forged) } == "SignatureDoesNotMatch")
            #expect(harness.counter.count(Harness.derive) == 2)
            // Another key's prefix is another entry.
            let bob = try await harness.manager.register(username: "bob", password: "password123")
            let bobs = Harness.signed("/a", accessKey: bob.user.accessKey, secretKey: bob.secretKey, timestamp: now)
            #expect(try await harness.verifier.verify(bobs).userId == bob.user.id)
            #expect(harness.counter.count(Harness.derive) == 3)
        }
    }

    @Test("a gateway takes in every revocation, a page at a time")
    func revocationsArePaged() async throws {
        try await Harness.with { harness in
            let expiresAt = Date() + 600
            for index in 0..<5 {
                try await harness.manager.revoke(.token, subject: "jti-\(index)", notBefore: nil, expiresAt: expiresAt)
            }
            let fresh = RevocationList()
            let calls = harness.counter.count(Harness.listRevocations)
            try await RevocationSync(users: harness.users, revocations: fresh, callTimeout: .seconds(30), pageSize: 2).refresh()
            #expect(harness.counter.count(Harness.listRevocations) - calls == 3)
            #expect(fresh.count == 5)
            #expect(!fresh.isStale(maxAge: .seconds(60)))
        }
    }

    @Test("nonces are still recorded by the user service with a kept key, so a replay is refused")
    func noncesStayShared() async throws {
        try await Harness.with { harness in
            let alice = try await harness.manager.register(username: "alice", password: "password123")
            let now = Date()
            _ = try await harness.verifier.verify(Harness.signed("/a", accessKey: alice.user.accessKey, secretKey: alice.secretKey, timestamp: now, nonce: "nonce-0001"))
            let next = Harness.signed("/a", accessKey: alice.user.accessKey, secretKey: alice.secretKey, timestamp: now, nonce: "nonce-0002")
            _ = try await harness.verifier.verify(next)
            #expect(harness.counter.count(Harness.derive) == 1)
            #expect(harness.counter.count(Harness.recordNonce) == 1)
            #expect(await reason { try await harness.verifier.verify(next) } == "NonceReused")
        }
    }

    @Test("rotating the keys, replacing the secret, disabling or deleting the user voids kept keys once revocations sync")
    func revocationsVoidKeptKeys() async throws {
        try await Harness.with { harness in
            let now = Date()
            func keep(_ username: String) async throws -> (UserWithSecret, SignatureVerification) {
                let user = try await harness.manager.register(username: username, password: "password123")
                let request = Harness.signed("/a", accessKey: user.user.accessKey, secretKey: user.secretKey, timestamp: now)
                _ = try await harness.verifier.verify(request)
                _ = try await harness.verifier.verify(request)
                return (user, request)
            }
            let (rotated, rotatedRequest) = try await keep("rotated")
            let (replaced, replacedRequest) = try await keep("replaced")
            let (disabled, disabledRequest) = try await keep("disabled")
            let (deleted, deletedRequest) = try await keep("deleted")
            let (untouched, untouchedRequest) = try await keep("untouched")
            #expect(harness.counter.count(Harness.derive) == 5)

            _ = try await harness.manager.rotateKeys(id: rotated.user.id)
            try await harness.manager.update(id: replaced.user.id, changes: UserChanges(secretKey: String(repeating: "k", count: 40)))
            try await harness.manager.update(id: disabled.user.id, changes: UserChanges(status: .disabled))
            try await harness.manager.delete(id: deleted.user.id)
            // Until the revocations arrive, the kept keys answer (the revocation interval).
            _ = try await harness.verifier.verify(untouchedRequest)
            try await harness.sync.refresh()

            #expect(await reason { try await harness.verifier.verify(rotatedRequest) } == "InvalidAccessKeyId")
            #expect(await reason { try await harness.verifier.verify(replacedRequest) } == "SignatureDoesNotMatch")
            #expect(await reason { try await harness.verifier.verify(disabledRequest) } == "AccessDenied")
            #expect(await reason { try await harness.verifier.verify(deletedRequest) } == "InvalidAccessKeyId")
            #expect(try await harness.verifier.verify(untouchedRequest).userId == untouched.user.id)
            #expect(harness.counter.count(Harness.derive) == 9, "the four revoked went to the service; the untouched did not")
        }
    }

    @Test("a revocation list that is not fresh sends every request to the user service")
    func staleRevocationsAskTheService() async throws {
        try await Harness.with { harness in
            let alice = try await harness.manager.register(username: "alice", password: "password123")
            let verifier = SignatureVerifier(users: harness.users, revocations: RevocationList(), maxRevocationAge: .seconds(60))
            let request = Harness.signed("/a", accessKey: alice.user.accessKey, secretKey: alice.secretKey, timestamp: Date())
            _ = try await verifier.verify(request)
            _ = try await verifier.verify(request)
            #expect(harness.counter.count(Harness.derive) == 2)
        }
    }
}
