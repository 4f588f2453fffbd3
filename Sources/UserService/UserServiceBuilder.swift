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
    /// How long a stopping process lets work in flight finish (SHUTDOWN_DRAIN_SECONDS).
    public var drainTime: Duration = .seconds(30)

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
        var result = UserServiceSettings(
            listen: listen, database: database, masterKey: masterKey, bcryptCost: bcryptCost,
            adminUsername: settings.string("admin.username"), adminPassword: adminPassword
        )
        result.drainTime = common.drainTime
        return result
    }
}

public let userServiceApplication = "user-service"

/// Builds the user service from its settings: opens and migrates the database, creates the first
/// admin if there are no users, and prepares the gRPC server (started by running `services`).
/// With `inProcess`, the server takes its calls from that link instead of `settings.listen`.
public func buildUserService(
    settings: UserServiceSettings, inProcess: InProcessServiceLink? = nil,
    telemetry: Telemetry = .disabled(component: userServiceApplication), logger: Logger
) async throws -> GRPCServiceProcess {
    try await GRPCServiceProcess.build(
        application: userServiceApplication, listen: inProcess.map { .inProcess($0) } ?? .network(settings.listen), database: settings.database, databaseName: "user database",
        migrations: UserMigrations.all, logger: logger, drainTime: settings.drainTime, telemetry: telemetry
    ) { database in
        let manager = try makeUserManager(settings: settings, database: database)
        if let created = try await manager.bootstrapAdmin(username: settings.adminUsername, password: settings.adminPassword) {
            announce(created, logger: logger)
        }
        return [UserGRPCService(users: manager)]
    }
}

public func makeUserManager(settings: UserServiceSettings, database: ServiceDatabase) throws -> UserManager {
    UserManager(
        repository: FluentUserRepository(database: database),
        hasher: PasswordHasher(cost: UInt8(settings.bcryptCost)),
        cipher: try SecretKeyCipher(masterKeyBase64: settings.masterKey),
        apiKeys: SQLApiKeyRepository(database: database)
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
