import ArgumentParser
import Configuration
import FluentKit
import Gateway
import Logging
import Platform
import ServiceLifecycle

/// A gRPC service added to the platform by `aisaas scaffold service`: what its subcommand,
/// `aisaas all`, the gateway and `aisaas migrate` need of it. Each one is a file of its own under
/// `AddedServices/`, listed in `addedServices`.
protocol AddedService: SendableMetatype {
    /// Its name in discovery, logs and metrics (`billing-service`).
    static var application: String { get }
    /// Its own subcommand (`aisaas billing-service`).
    static var command: any ParsableCommand.Type { get }
    /// Where gateways find it with `DISCOVERY=static` (`BILLING_SERVICE_ADDRS`), as a settings key.
    static var addressesKey: String { get }
    /// The port its subcommand listens on unless configured.
    static var defaultPort: Int { get }
    /// What the gateway serves of it.
    static var routes: any AddedServiceRoutes { get }
    /// Its database and migrations, from settings.
    static func database(_ settings: SettingsReader, common: CommonSettings) throws -> (DatabaseLocation, [any Migration])
    /// Builds it from settings; with `inProcess`, it takes its calls from that link.
    static func build(
        _ settings: SettingsReader, common: CommonSettings, defaultPort: Int, inProcess: InProcessServiceLink?, telemetry: Telemetry, logger: Logger
    ) async throws -> GRPCServiceProcess
}

extension AddedService {
    /// The name it was scaffolded with (`billing`), as `aisaas migrate --service` takes it.
    static var name: String { String(application.dropLast("-service".count)) }
}

/// The services `aisaas scaffold service` added, in the order they were added.
let addedServices: [any AddedService.Type] = [
    // aisaas scaffold: added services
]

/// An added service in `aisaas all`: served in process, reached by the gateway through its link.
struct AddedServiceInProcess {
    let process: GRPCServiceProcess
    let connection: AddedServiceConnection

    static func build(
        _ service: any AddedService.Type, reader: ConfigReader, common: CommonSettings, callTimeout: Duration,
        observability: ObservabilityRuntime, logger: Logger
    ) async throws -> AddedServiceInProcess {
        let link = InProcessServiceLink(name: service.application)
        let process = try await service.build(
            SettingsReader(reader), common: common, defaultPort: 0, inProcess: link,
            telemetry: try observability.telemetry(component: service.application), logger: logger.labelled(service.application)
        )
        return AddedServiceInProcess(
            process: process,
            connection: AddedServiceConnection(connection: .inProcess(link, health: process.health), routes: service.routes, callTimeout: callTimeout)
        )
    }
}

/// How a gateway process reaches each added service: as `DISCOVERY` says, by default on
/// 127.0.0.1 at the service's default port.
func addedServiceConnections(
    reader: ConfigReader, discovery: DiscoverySettings, watcher: RegistryWatcher?, callTimeout: Duration
) throws -> [AddedServiceConnection] {
    try addedServices.map { service in
        let settings = SettingsReader(reader)
        var addresses = HostPort.list(service.addressesKey, from: settings)
        try settings.finish()
        if addresses.isEmpty { addresses = [HostPort(host: "127.0.0.1", port: service.defaultPort)] }
        return AddedServiceConnection(
            connection: .network(discovery.endpoints(for: service.application, addresses: addresses, watcher: watcher)),
            routes: service.routes, callTimeout: callTimeout
        )
    }
}

/// An added service alone, as its subcommand runs it.
func buildAddedServiceProcess(_ service: any AddedService.Type, config: PlatformConfiguration, logger: Logger) async throws -> ProcessPlan {
    let observability = try ObservabilityRuntime.read(config: config.reader, sharedProcess: false, logger: logger)
    let discovery = try readDiscovery(config.reader)
    let center = try await makeConfigurationCenter(config: config, discovery: discovery, observability: observability, logger: logger)
    let common = CommonSettings.read(SettingsReader(center.reader))
    let process = try await service.build(
        SettingsReader(center.reader), common: common, defaultPort: service.defaultPort, inProcess: nil,
        telemetry: try observability.telemetry(component: service.application), logger: logger
    )
    center.markStarted()
    return ProcessPlan(
        services: observability.services + [center] + process.services
            + registrationServices(discovery, service: service.application, process: process, logger: logger),
        logger: logger, drainTime: common.drainTime
    )
}

/// Runs an added service alone: the body of its subcommand.
func runAddedService(_ service: any AddedService.Type, sources: SourceOptions) async throws {
    try await runReportingConfigurationErrors {
        let (config, logger) = try await sources.loadForServing()
        try await buildAddedServiceProcess(service, config: config, logger: logger).run()
    }
}
