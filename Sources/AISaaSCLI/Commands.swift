import AIService
import ArgumentParser
import Configuration
import FluentKit
import Foundation
import Logging
import Platform
import UserService

/// `aisaas`: runs the platform's processes and its maintenance tasks.
public struct AISaaSCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "aisaas",
        abstract: "AI SaaS platform: an HTTP gateway in front of gRPC user and AI services.",
        discussion: """
            Settings come from environment variables, then a .env file, then an optional JSON \
            config file; the README lists every key. With no settings at all, `aisaas all` serves \
            on http://127.0.0.1:9000 and keeps its data under ./data.
            """,
        subcommands: [All.self, GatewayCommand.self, UserServiceCommand.self, AIServiceCommand.self] + addedServices.map { $0.command } + [
            Migrate.self, Seed.self, SignCommand.self, InvokeCommand.self, RegistryCommand.self, ConfigCommand.self, ProbeCommand.self, ScaffoldCommand.self,
        ],
        defaultSubcommand: nil
    )

    public init() {}
}

/// Options every subcommand takes.
struct SourceOptions: ParsableArguments {
    @Option(name: .long, help: "JSON or YAML config file, watched for changes (lowest precedence; also CONFIG_FILE).")
    var config: String?

    @Option(name: .long, help: "File of KEY=value lines read after the environment.")
    var envFile: String = ".env"

    func load() async throws -> (PlatformConfiguration, Logger) {
        let configuration = try await ConfigurationLoader.load(envFile: envFile, configFile: config)
        let settings = SettingsReader(configuration.reader)
        let common = CommonSettings.read(settings)
        try settings.finish()
        LoggingSetup.bootstrap(level: common.logLevel, format: common.logFormat)
        return (configuration, Logger(label: "aisaas"))
    }

    /// For the commands that serve: SIGHUP asks a running process to read its config file again
    /// (when there is one) and must never end it, not even while it starts (its default action).
    func loadForServing() async throws -> (PlatformConfiguration, Logger) {
        signal(SIGHUP, SIG_IGN)
        return try await load()
    }

    /// For one-off commands: the settings as they are now.
    func loadReader() async throws -> (ConfigReader, Logger) {
        let (configuration, logger) = try await load()
        return (configuration.reader, logger)
    }
}

/// Prints configuration mistakes plainly instead of as a stack of Swift errors.
func runReportingConfigurationErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ConfigurationError {
        FileHandle.standardError.write(Data((error.description + "\n").utf8))
        throw ExitCode(78)  // EX_CONFIG
    }
}

public struct All: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        abstract: "Run the gateway, user service and AI service in one process (the embedded default).",
        discussion: """
            The services talk real gRPC over loopback on ephemeral ports (USER_SERVICE_PORT and \
            AI_SERVICE_PORT pin them). SQLite files live in DATA_DIR unless USER_DATABASE_URL / \
            AI_DATABASE_URL name PostgreSQL. SIGTERM or SIGINT drains in-flight requests and exits 0.
            """
    )
    @OptionGroup var sources: SourceOptions

    public init() {}

    public func run() async throws {
        try await runReportingConfigurationErrors {
            let (config, logger) = try await sources.loadForServing()
            try await buildAllInOne(config: config, logger: logger).run()
        }
    }
}

public struct GatewayCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Run the HTTP gateway alone.",
        discussion: """
            Calls the user service at USER_SERVICE_ADDRS and the AI service at AI_SERVICE_ADDRS \
            (comma-separated host:port lists, round-robin; defaults 127.0.0.1:9101 and \
            127.0.0.1:9102). Every replica must share JWT_SECRET.
            """
    )
    @OptionGroup var sources: SourceOptions

    public init() {}

    public func run() async throws {
        try await runReportingConfigurationErrors {
            let (config, logger) = try await sources.loadForServing()
            try await buildGatewayProcess(config: config, logger: logger).run()
        }
    }
}

public struct UserServiceCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "user-service",
        abstract: "Run the user service (gRPC) alone.",
        discussion: """
            Listens on USER_SERVICE_HOST:USER_SERVICE_PORT (default 127.0.0.1:9101) and stores \
            users in USER_DATABASE_URL (default SQLite in DATA_DIR). Every replica must share \
            SECRET_KEY_MASTER_KEY and the database.
            """
    )
    @OptionGroup var sources: SourceOptions

    public init() {}

    public func run() async throws {
        try await runReportingConfigurationErrors {
            let (config, logger) = try await sources.loadForServing()
            try await buildUserServiceProcess(config: config, logger: logger).run()
        }
    }
}

public struct AIServiceCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "ai-service",
        abstract: "Run the AI service (gRPC) alone.",
        discussion: "Listens on AI_SERVICE_HOST:AI_SERVICE_PORT (default 127.0.0.1:9102); data in AI_DATABASE_URL."
    )
    @OptionGroup var sources: SourceOptions

    public init() {}

    public func run() async throws {
        try await runReportingConfigurationErrors {
            let (config, logger) = try await sources.loadForServing()
            try await buildAIServiceProcess(config: config, logger: logger).run()
        }
    }
}

public struct Migrate: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        abstract: "Bring the databases' schemas up to date, then exit.",
        discussion: "Services also migrate at start-up; run this before rolling out several replicas at once."
    )
    @OptionGroup var sources: SourceOptions

    public init() {}

    @Option(help: "Which database: user, ai, an added service's name, or all.")
    var service: String = "all"

    /// `user`, `ai`, then each added service by the name it was scaffolded with.
    static var serviceNames: [String] { ["user", "ai"] + addedServices.map { $0.name } }

    public func validate() throws {
        guard service == "all" || Self.serviceNames.contains(service) else {
            throw ValidationError("--service must be \((Self.serviceNames + ["all"]).joined(separator: ", ")), not '\(service)'")
        }
    }

    public func run() async throws {
        try await runReportingConfigurationErrors {
            let (config, logger) = try await sources.loadReader()
            let common = CommonSettings.read(SettingsReader(config))
            let wanted = { (name: String) in service == "all" || service == name }
            if wanted("user") {
                let settings = try UserServiceSettings.read(SettingsReader(config), common: common, defaultPort: 9101, logger: logger)
                try await migrate(settings.database, UserMigrations.all, logger: logger)
            }
            if wanted("ai") {
                let settings = try AIServiceSettings.read(SettingsReader(config), common: common, defaultPort: 9102)
                try await migrate(settings.database, AIMigrations.all, logger: logger)
            }
            for added in addedServices where wanted(added.name) {
                let (location, migrations) = try added.database(SettingsReader(config), common: common)
                try await migrate(location, migrations, logger: logger)
            }
        }
    }

    private func migrate(_ location: DatabaseLocation, _ migrations: [any FluentKit.Migration], logger: Logger) async throws {
        let database = try ServiceDatabase(location: location, migrations: migrations, logger: logger)
        do {
            try await database.migrate()
            await database.shutdown()
        } catch {
            await database.shutdown()
            throw error
        }
        print("migrated \(location)")
    }
}

public struct Seed: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        abstract: "Create the admin (ADMIN_USERNAME / ADMIN_PASSWORD) and a demo user, then exit.",
        discussion: """
            Users that already exist are left alone. A password that is not configured \
            (ADMIN_PASSWORD, DEMO_PASSWORD) is generated and printed once. DEMO_USERNAME defaults to 'demo'.
            """
    )
    @OptionGroup var sources: SourceOptions

    public init() {}

    public func run() async throws {
        try await runReportingConfigurationErrors {
            let (config, logger) = try await sources.loadReader()
            let reader = SettingsReader(config)
            let common = CommonSettings.read(reader)
            let settings = try UserServiceSettings.read(SettingsReader(config), common: common, defaultPort: 9101, logger: logger)
            let demoUsername = reader.string("demo.username", default: "demo")
            let demoPassword = reader.string("demo.password", isSecret: true)
            try reader.finish()
            let database = try ServiceDatabase(location: settings.database, migrations: UserMigrations.all, logger: logger)
            do {
                try await database.migrate()
                let manager = try makeUserManager(settings: settings, database: database)
                if let admin = try await manager.createAdmin(username: settings.adminUsername, password: settings.adminPassword) {
                    print("admin: \(admin.user.username)" + (admin.generatedPassword.map { " password: \($0)" } ?? " (password from ADMIN_PASSWORD)"))
                } else {
                    print("admin: \(settings.adminUsername ?? "admin") exists, left unchanged")
                }
                if (try? await manager.user(username: demoUsername)) != nil {
                    print("demo: \(demoUsername) exists, left unchanged")
                } else {
                    let password = demoPassword ?? RandomText.alphanumeric(16)
                    let demo = try await manager.register(username: demoUsername, password: password)
                    print("demo: \(demoUsername)" + (demoPassword == nil ? " password: \(password)" : " (password from DEMO_PASSWORD)"))
                    print("demo access key: \(demo.user.accessKey) secret key: \(demo.secretKey)")
                }
                await database.shutdown()
            } catch {
                await database.shutdown()
                throw error
            }
        }
    }
}
