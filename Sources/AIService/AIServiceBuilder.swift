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

public let aiServiceApplication = "ai-service"

/// Builds the AI service: opens and migrates its database and prepares its gRPC server.
public func buildAIService(settings: AIServiceSettings, logger: Logger) async throws -> GRPCServiceProcess {
    try await GRPCServiceProcess.build(
        application: aiServiceApplication, listen: settings.listen, database: settings.database,
        migrations: AIMigrations.all, logger: logger
    ) { _ in [] }
}
