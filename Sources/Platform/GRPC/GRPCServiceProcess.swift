import FluentKit
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import ServiceLifecycle

/// A gRPC service process, ready to run: its database, health and server.
public struct GRPCServiceProcess: Sendable {
    public let database: ServiceDatabase
    public let health: HealthStatus
    /// Whether the database answers; while it does not, `health` says NOT_SERVING.
    public let availability: DatabaseAvailability
    public let server: GRPCServer<HTTP2ServerTransport.Posix>
    /// Add to a `ServiceGroup` in this order: on shutdown the health turns NOT_SERVING first, then
    /// the server drains its calls, then the database closes.
    public let services: [any Service]

    /// The address the server listens on, once it does.
    public func listeningAddress() async throws -> GRPCNIOTransportCore.SocketAddress {
        try await server.transport.listeningAddress
    }

    /// Opens and migrates the database, then serves the RPC services `makeServices` returns (plus
    /// `grpc.health.v1.Health`) on `listen`. Errors name `application`.
    public static func build(
        application: String,
        listen: HostPort,
        database location: DatabaseLocation,
        databaseName: String? = nil,
        migrations: [any Migration],
        logger: Logger,
        drainTime: Duration = .seconds(30),
        maxRequestBytes: Int = 4 << 20,
        makeServices: (ServiceDatabase) async throws -> [any RegistrableRPCService]
    ) async throws -> GRPCServiceProcess {
        let database = try ServiceDatabase(location: location, migrations: migrations, logger: logger)
        do {
            try await database.migrate()
            let services = try await makeServices(database)
            let health = HealthStatus()
            health.set(.serving)
            let availability = DatabaseAvailability(
                name: databaseName ?? "\(application) database", database: database, health: health, logger: logger
            )
            for service in services {
                if let described = service as? any DescribedService { health.set(.serving, for: described.serviceName) }
            }
            let address: GRPCNIOTransportCore.SocketAddress
            do {
                // A host name or an IPv6 address ("::", "::1") as well as IPv4.
                address = try await .resolving(listen)
            } catch {
                throw ConfigurationError(problems: ["\(application) cannot listen on \(listen): \(error)"])
            }
            let server = GRPCServer(
                transport: HTTP2ServerTransport.Posix(
                    address: address, transportSecurity: .plaintext,
                    config: .defaults { $0.rpc.maxRequestPayloadSize = maxRequestBytes }
                ),
                services: services + [HealthService(status: health)],
                interceptors: [
                    DrainingServerInterceptor(health: health),
                    RequestScopeServerInterceptor(application: application, logger: logger, database: availability),
                ]
            )
            logger.info("\(application) configured", metadata: ["listen": "\(listen)", "database": "\(location)"])
            return GRPCServiceProcess(
                database: database, health: health, availability: availability, server: server,
                services: [
                    ShutdownHook { await database.shutdown() },
                    DatabaseAvailabilityService(availability),
                    DrainLimitedService(GRPCServerService(server), drainTime: drainTime, name: application, logger: logger),
                    ShutdownHook { health.markAllNotServing() },
                ]
            )
        } catch {
            await database.shutdown()
            throw error
        }
    }
}

/// Probes the database while the process runs.
struct DatabaseAvailabilityService: Service {
    let availability: DatabaseAvailability

    init(_ availability: DatabaseAvailability) {
        self.availability = availability
    }

    func run() async throws {
        await cancelWhenGracefulShutdown { await availability.run() }
    }
}

/// An RPC service that reports its health under its fully qualified name.
public protocol DescribedService {
    var serviceName: String { get }
}
