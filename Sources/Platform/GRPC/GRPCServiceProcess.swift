import FluentKit
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import ServiceLifecycle

/// A gRPC service process, ready to run: its database, health and server.
public struct GRPCServiceProcess: Sendable {
    public let database: ServiceDatabase
    public let health: HealthStatus
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
        migrations: [any Migration],
        logger: Logger,
        maxRequestBytes: Int = 4 << 20,
        makeServices: (ServiceDatabase) async throws -> [any RegistrableRPCService]
    ) async throws -> GRPCServiceProcess {
        let database = try ServiceDatabase(location: location, migrations: migrations, logger: logger)
        do {
            try await database.migrate()
            let services = try await makeServices(database)
            let health = HealthStatus()
            health.set(.serving)
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
                interceptors: [RequestScopeServerInterceptor(application: application, logger: logger)]
            )
            logger.info("\(application) configured", metadata: ["listen": "\(listen)", "database": "\(location)"])
            return GRPCServiceProcess(
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
}

/// An RPC service that reports its health under its fully qualified name.
public protocol DescribedService {
    var serviceName: String { get }
}
