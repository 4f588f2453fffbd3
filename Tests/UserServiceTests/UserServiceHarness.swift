import AISaaSProtos
import GRPCCore
import GRPCInProcessTransport
import Logging
import Platform
import TestSupport
import UserService

/// A user service on a fresh database, served over the in-process gRPC transport.
struct UserServiceHarness {
    let client: Grpc_User_V1_UserService.Client<InProcessTransport.Client>
    let manager: UserManager
    let database: ServiceDatabase

    static let masterKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  // 32 bytes

    static func run<Result: Sendable>(
        _ kind: TestDatabaseKind,
        _ body: (UserServiceHarness) async throws -> Result
    ) async throws -> Result {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let logger = Logger(label: "user-service-test")
        let database = try ServiceDatabase(location: try await kind.makeLocation(in: directory), migrations: UserMigrations.all, logger: logger)
        do {
            try await database.migrate()
            let manager = UserManager(
                repository: FluentUserRepository(database: database),
                hasher: PasswordHasher(cost: 4),
                cipher: try SecretKeyCipher(masterKeyBase64: masterKey)
            )
            let transport = InProcessTransport()
            let result = try await withGRPCServer(
                transport: transport.server,
                services: [UserGRPCService(users: manager)],
                interceptors: [RequestScopeServerInterceptor(application: "user-service", logger: logger)]
            ) { _ in
                try await withGRPCClient(transport: transport.client) { client in
                    try await body(UserServiceHarness(client: Grpc_User_V1_UserService.Client(wrapping: client), manager: manager, database: database))
                }
            }
            await database.shutdown()
            return result
        } catch {
            await database.shutdown()
            throw error
        }
    }

    @discardableResult
    func register(_ username: String, _ password: String = "password123") async throws -> Grpc_User_V1_UserWithSecret {
        try await client.registerUser(.with {
            $0.username = username
            $0.password = password
        })
    }
}

/// The gRPC error a call throws, or nil if it succeeds.
func rpcError(_ call: () async throws -> some Any) async -> RPCError? {
    do {
        _ = try await call()
        return nil
    } catch let error as RPCError {
        return error
    } catch {
        return RPCError(code: .unknown, message: "\(error)")
    }
}
