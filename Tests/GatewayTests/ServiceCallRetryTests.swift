import AISaaSProtos
import AKSKSigning
import Foundation
import GRPCCore
import GRPCInProcessTransport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Platform
import Synchronization
import Testing
import TestSupport
import UserService
@testable import Gateway

/// Fails the first call of each listed method with UNAVAILABLE, as an instance that went away in
/// the middle of the call would, and counts every call.
private final class FlakyInstance: ServerInterceptor {
    private let flaky: Set<String>
    private let calls = Mutex<[String: Int]>([:])

    init(failingFirst methods: [MethodDescriptor]) {
        flaky = Set(methods.map(\.fullyQualifiedMethod))
    }

    func count(_ method: MethodDescriptor) -> Int { calls.withLock { $0[method.fullyQualifiedMethod] ?? 0 } }

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @concurrent @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let method = context.descriptor.fullyQualifiedMethod
        let call = calls.withLock { calls in
            calls[method, default: 0] += 1
            return calls[method, default: 0]
        }
        if call == 1, flaky.contains(method) {
            throw RPCError(code: .unavailable, message: "the instance went away")
        }
        return try await next(request, context)
    }
}

@Suite("calls lost with an instance")
struct ServiceCallRetryTests {
    @Test("a read is run again; a signature check is not (it records its nonce) and the client gets 503")
    func readsRetryAndSignatureChecksDoNot() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let logger = Logger(label: "gateway-retry-test")
        let database = try ServiceDatabase(location: .sqlite(path: directory.path + "/user.sqlite"), migrations: UserMigrations.all, logger: logger)
        try await database.migrate()
        do {
            try await runScenario(database: database, logger: logger)
        } catch {
            await database.shutdown()
            throw error
        }
        await database.shutdown()
    }

    private func runScenario(database: ServiceDatabase, logger: Logger) async throws {
        let manager = UserManager(
            repository: FluentUserRepository(database: database), hasher: PasswordHasher(cost: 4),
            cipher: try SecretKeyCipher(masterKeyBase64: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
        )
        let registered = try await manager.register(username: "alice", password: "password123")
        let flaky = FlakyInstance(failingFirst: [
            Grpc_User_V1_UserService.Method.GetUserById.descriptor,
            Grpc_User_V1_UserService.Method.VerifySignatureForKey.descriptor,
        ])

        let transport = InProcessTransport()
        try await withGRPCServer(
            transport: transport.server, services: [UserGRPCService(users: manager)],
            interceptors: [flaky, RequestScopeServerInterceptor(application: "user-service", logger: logger)]
        ) { _ in
            try await withGRPCClient(transport: transport.client, interceptors: [RequestScopeClientInterceptor()]) { client in
                let revocations = RevocationList()
                revocations.markSynced()
                let tokens = await AccessTokens(secret: testJWTSecret, lifetime: 3600, revocations: revocations)
                let router = try makeTestRouter(over: client, tokens: tokens, revocations: revocations, logger: logger)
                let (token, _) = try await tokens.issue(userId: registered.user.id, username: "alice", role: .user, securityStamp: 0)

                try await Application(router: router).test(.router) { http in
                    // GetUserById fails once: the gateway asks again and the client never knows.
                    try await http.execute(uri: "/user/current", method: .get, headers: [.authorization: "Bearer \(token)"]) { response in
                        #expect(response.status == .ok)
                        #expect(String(buffer: response.body).contains("\"username\":\"alice\""))
                    }
                    #expect(flaky.count(Grpc_User_V1_UserService.Method.GetUserById.descriptor) == 2)

                    // VerifySignature fails once: one attempt only, and the client sees 503.
                    let body = #"{"question":"hello"}"#
                    let signed = try Signer(accessKey: registered.user.accessKey, secretKey: registered.secretKey).sign(
                        method: "POST", url: "http://localhost/ai/invoke/chat_completion", body: Array(body.utf8), contentSHA256: true
                    )
                    var headers: HTTPFields = [.contentType: "application/json"]
                    // The router test's requests come for `localhost`, the host signed above.
                    for header in signed.headersToAdd where header.name != "host" {
                        headers[HTTPField.Name(header.name)!] = header.value
                    }
                    try await http.execute(uri: "/ai/invoke/chat_completion", method: .post, headers: headers, body: ByteBuffer(string: body)) { response in
                        #expect(response.status == .serviceUnavailable)
                    }
                    #expect(flaky.count(Grpc_User_V1_UserService.Method.VerifySignatureForKey.descriptor) == 1)
                }
            }
        }
    }
}
