import AISaaSProtos
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import Platform
import ServiceLifecycle

/// Everything the AI service needs, read from configuration.
public struct AIServiceSettings: Sendable {
    public var listen: HostPort
    public var database: DatabaseLocation

    public static func read(_ settings: SettingsReader, common: CommonSettings, defaultPort: Int) throws -> AIServiceSettings {
        let listen = HostPort(
            host: settings.string("ai.service.host", default: "127.0.0.1"),
            port: settings.int("ai.service.port", default: defaultPort, range: 0...65535)
        )
        let database: DatabaseLocation
        switch DatabaseLocation.parse(settings.string("ai.database.url", isSecret: true), defaultSQLitePath: common.dataDirectory + "/ai.sqlite") {
        case .success(let location): database = location
        case .failure(let error):
            error.problems.forEach { settings.report("AI_DATABASE_URL: \($0)") }
            database = .sqlite(path: common.dataDirectory + "/ai.sqlite")
        }
        try settings.finish()
        return AIServiceSettings(listen: listen, database: database)
    }
}

/// The AI service, ready to run.
public struct AIServiceProcess: Sendable {
    public let database: ServiceDatabase
    public let health: HealthStatus
    public let server: GRPCServer<HTTP2ServerTransport.Posix>
    /// Add to a `ServiceGroup` in this order.
    public let services: [any Service]

    public func listeningAddress() async throws -> GRPCNIOTransportCore.SocketAddress {
        try await server.transport.listeningAddress
    }
}

public let aiServiceApplication = "ai-service"

/// Builds the AI service: opens and migrates its database and prepares its gRPC server.
public func buildAIService(settings: AIServiceSettings, logger: Logger) async throws -> AIServiceProcess {
    let database = try ServiceDatabase(location: settings.database, migrations: AIMigrations.all, logger: logger)
    do {
        try await database.migrate()
        let health = HealthStatus()
        health.set(.serving)
        let server = GRPCServer(
            transport: HTTP2ServerTransport.Posix(
                address: .ipv4(host: settings.listen.host, port: settings.listen.port),
                transportSecurity: .plaintext
            ),
            services: [HealthService(status: health)],
            interceptors: [RequestScopeServerInterceptor(application: aiServiceApplication, logger: logger)]
        )
        logger.info("AI service configured", metadata: ["listen": "\(settings.listen)", "database": "\(settings.database)"])
        return AIServiceProcess(
            database: database, health: health, server: server,
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
