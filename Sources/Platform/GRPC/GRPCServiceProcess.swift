import FluentKit
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import ServiceLifecycle

/// Where a gRPC service takes its calls.
public enum ServiceListener: Sendable {
    /// HTTP/2 on a TCP address (separate processes).
    case network(HostPort)
    /// From clients in this process (`aisaas all`), through the in-process transport or by direct
    /// unary calls (`DirectUnaryCaller`).
    case inProcess(InProcessServiceLink)
}

/// A gRPC server of either transport.
public protocol GRPCServing: Sendable {
    func serve() async throws
    func beginGracefulShutdown()
}

extension GRPCServer: GRPCServing {}

/// A gRPC service process, ready to run: its database, health and server.
public struct GRPCServiceProcess: Sendable {
    public let database: ServiceDatabase
    public let health: HealthStatus
    /// Whether the database answers; while it does not, `health` says NOT_SERVING.
    public let availability: DatabaseAvailability
    public let server: any GRPCServing
    private let listener: @Sendable () async throws -> GRPCNIOTransportCore.SocketAddress
    /// Add to a `ServiceGroup` in this order: on shutdown the health turns NOT_SERVING first, then
    /// the server drains its calls, then the database closes.
    public let services: [any Service]

    /// The address the server listens on, once it does (an in-process server has none).
    public func listeningAddress() async throws -> GRPCNIOTransportCore.SocketAddress {
        try await listener()
    }

    /// Opens and migrates the database, then serves the RPC services `makeServices` returns (plus
    /// `grpc.health.v1.Health`) on `listen`. Errors name `application`.
    public static func build(
        application: String,
        listen: ServiceListener,
        database location: DatabaseLocation,
        databaseName: String? = nil,
        migrations: [any Migration],
        logger: Logger,
        drainTime: Duration = .seconds(30),
        maxRequestBytes: Int = 4 << 20,
        telemetry: Telemetry? = nil,
        makeServices: (ServiceDatabase) async throws -> [any RegistrableRPCService]
    ) async throws -> GRPCServiceProcess {
        let database = try ServiceDatabase(location: location, migrations: migrations, logger: logger, telemetry: telemetry)
        do {
            try await database.migrate()
            let services = try await makeServices(database)
            let health = HealthStatus()
            health.set(.serving)
            health.set(.serving, for: HealthStatus.livenessService)
            let availability = DatabaseAvailability(
                name: databaseName ?? "\(application) database", database: database, health: health, logger: logger
            )
            for service in services {
                if let described = service as? any DescribedService { health.set(.serving, for: described.serviceName) }
            }
            let rpcServices = services + [HealthService(status: health)]
            // Outermost, the telemetry sees every call as the client does, refusals included.
            let interceptors: [any ServerInterceptor] = [
                TelemetryServerInterceptor(telemetry: telemetry ?? .disabled(component: application)),
                DrainingServerInterceptor(health: health),
                RequestScopeServerInterceptor(application: application, logger: logger, database: availability),
            ]
            let server: any GRPCServing
            let listener: @Sendable () async throws -> GRPCNIOTransportCore.SocketAddress
            switch listen {
            case .network(let hostPort):
                let address: GRPCNIOTransportCore.SocketAddress
                do {
                    // A host name or an IPv6 address ("::", "::1") as well as IPv4.
                    address = try await .resolving(hostPort)
                } catch {
                    throw ConfigurationError(problems: ["\(application) cannot listen on \(hostPort): \(error)"])
                }
                let http2 = GRPCServer(
                    transport: HTTP2ServerTransport.Posix(
                        address: address, transportSecurity: .plaintext,
                        config: .platform(maxRequestBytes: maxRequestBytes)
                    ),
                    services: rpcServices, interceptors: interceptors
                )
                server = http2
                listener = { try await http2.transport.listeningAddress }
            case .inProcess(let link):
                server = GRPCServer(transport: link.serverTransport, services: rpcServices, interceptors: interceptors)
                link.directTarget.publish(services: rpcServices, interceptors: interceptors)
                listener = { throw RPCError(code: .failedPrecondition, message: "\(application) takes its calls in process") }
            }
            logger.info("\(application) configured", metadata: ["listen": "\(listen)", "database": "\(location)"])
            return GRPCServiceProcess(
                database: database, health: health, availability: availability, server: server, listener: listener,
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
