import AISaaSProtos
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import Platform
import ServiceLifecycle

/// Everything the user service needs, read from configuration.
public struct UserServiceSettings: Sendable {
    public var listen: HostPort
    public var database: DatabaseLocation
    /// Base64 of the 32-byte key that seals secret keys at rest.
    public var masterKey: String
    public var bcryptCost: Int
    /// The first admin's credentials; without them a password is generated and logged once.
    public var adminUsername: String?
    public var adminPassword: String?

    public static func read(_ settings: SettingsReader, common: CommonSettings, defaultPort: Int, logger: Logger) throws -> UserServiceSettings {
        let listen = HostPort(
            host: settings.string("user.service.host", default: "127.0.0.1"),
            port: settings.int("user.service.port", default: defaultPort, range: 0...65535)
        )
        let database: DatabaseLocation
        switch DatabaseLocation.parse(settings.string("user.database.url", isSecret: true), defaultSQLitePath: common.dataDirectory + "/user.sqlite") {
        case .success(let location): database = location
        case .failure(let error):
            error.problems.forEach { settings.report("USER_DATABASE_URL: \($0)") }
            database = .sqlite(path: common.dataDirectory + "/user.sqlite")
        }
        let bcryptCost = settings.int("bcrypt.cost", default: 12, range: 4...16)
        let adminPassword = settings.string("admin.password", isSecret: true)
        if let adminPassword, !UserManager.passwordLength.contains(adminPassword.count) {
            settings.report("ADMIN_PASSWORD must be \(UserManager.passwordLength.lowerBound) to \(UserManager.passwordLength.upperBound) characters long")
        }
        let configuredKey = settings.string("secret.key.master.key", isSecret: true)
        try settings.finish()
        let masterKey = try PersistentSecret.resolve(
            configured: configuredKey, name: "secret-key-master-key", settingName: "SECRET_KEY_MASTER_KEY",
            byteCount: 32, dataDirectory: common.dataDirectory, logger: logger
        )
        return UserServiceSettings(
            listen: listen, database: database, masterKey: masterKey, bcryptCost: bcryptCost,
            adminUsername: settings.string("admin.username"), adminPassword: adminPassword
        )
    }
}

/// A running-ready user service: its gRPC server, database and the services that run them.
public struct UserServiceProcess: Sendable {
    public let manager: UserManager
    public let database: ServiceDatabase
    public let health: HealthStatus
    public let server: GRPCServer<HTTP2ServerTransport.Posix>
    /// Add to a `ServiceGroup` in this order.
    public let services: [any Service]

    /// The address the server listens on, once it does.
    public func listeningAddress() async throws -> GRPCNIOTransportCore.SocketAddress {
        try await server.transport.listeningAddress
    }
}

public let userServiceApplication = "user-service"

/// Builds the user service from its settings: opens and migrates the database, creates the first
/// admin if there are no users, and prepares the gRPC server (started by running `services`).
public func buildUserService(settings: UserServiceSettings, logger: Logger) async throws -> UserServiceProcess {
    let database = try ServiceDatabase(location: settings.database, migrations: UserMigrations.all, logger: logger)
    do {
        try await database.migrate()
        let manager = try makeUserManager(settings: settings, database: database)
        if let created = try await manager.bootstrapAdmin(username: settings.adminUsername, password: settings.adminPassword) {
            announce(created, logger: logger)
        }
        let health = HealthStatus()
        health.set(.serving)
        health.set(.serving, for: Grpc_User_V1_UserService.descriptor.fullyQualifiedService)
        let server = GRPCServer(
            transport: HTTP2ServerTransport.Posix(
                address: .ipv4(host: settings.listen.host, port: settings.listen.port),
                transportSecurity: .plaintext
            ),
            services: [UserGRPCService(users: manager), HealthService(status: health)],
            interceptors: [RequestScopeServerInterceptor(application: userServiceApplication, logger: logger)]
        )
        logger.info("user service configured", metadata: ["listen": "\(settings.listen)", "database": "\(settings.database)"])
        return UserServiceProcess(
            manager: manager, database: database, health: health, server: server,
            services: [
                ShutdownHook { await database.shutdown() },
                GRPCServerService(server),
                ShutdownHook { health.markAllNotServing() },
            ]
        )
    } catch {
        await database.shutdown()
        throw error
    }
}

public func makeUserManager(settings: UserServiceSettings, database: ServiceDatabase) throws -> UserManager {
    UserManager(
        repository: FluentUserRepository(database: database),
        hasher: PasswordHasher(cost: UInt8(settings.bcryptCost)),
        cipher: try SecretKeyCipher(masterKeyBase64: settings.masterKey)
    )
}

/// Logs the creation of an admin; a generated password is shown here and never again.
public func announce(_ created: (user: User, generatedPassword: String?), logger: Logger) {
    if let password = created.generatedPassword {
        logger.warning("created admin '\(created.user.username)' with generated password: \(password) (shown once; change it after logging in)")
    } else {
        logger.notice("created admin '\(created.user.username)' from ADMIN_USERNAME / ADMIN_PASSWORD")
    }
}
