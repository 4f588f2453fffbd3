import AIProviders
import AIService
import Configuration
import Gateway
import Hummingbird
import Logging
import Platform
import ServiceLifecycle
import UnixSignals
import UserService

/// The services of one process, in start order (a `ServiceGroup` stops them in reverse).
public struct ProcessPlan {
    public var services: [any Service]
    public var logger: Logger
    /// How long SIGTERM lets work in flight finish before it is cut short (SHUTDOWN_DRAIN_SECONDS).
    public var drainTime: Duration = .seconds(30)
    /// The gateway's routes, in a process that has a gateway.
    public var gatewayRouter: Router<GatewayRequestContext>?

    public init(services: [any Service], logger: Logger, drainTime: Duration = .seconds(30), gatewayRouter: Router<GatewayRequestContext>? = nil) {
        self.services = services
        self.logger = logger
        self.drainTime = drainTime
        self.gatewayRouter = gatewayRouter
    }

    /// Runs until SIGTERM or SIGINT, then drains in-flight work and returns.
    public func run() async throws {
        try await makeGroup(shutdownSignals: [.sigterm, .sigint]).run()
    }

    /// The services as a group that stops gracefully on the given signals or when asked to.
    public func makeGroup(shutdownSignals: [UnixSignal]) -> ServiceGroup {
        var configuration = ServiceGroupConfiguration(
            services: services.map { .init(service: $0) },
            gracefulShutdownSignals: shutdownSignals,
            logger: logger
        )
        // Each server cuts its own drain short at `drainTime`; this is the last resort if something
        // after it hangs.
        configuration.maximumGracefulShutdownDuration = drainTime + .seconds(15)
        return ServiceGroup(configuration: configuration)
    }
}

/// The configuration center of a process: etcd's `<prefix>/config/` keys are a source with
/// `DISCOVERY=etcd`; the log level, the access log and the sampler follow changes.
func makeConfigurationCenter(
    config: PlatformConfiguration, discovery: DiscoverySettings, observability: ObservabilityRuntime, logger: Logger
) async throws -> ConfigurationCenter {
    let center = ConfigurationCenter(
        configuration: config, etcd: discovery.makeStore().map { ($0, discovery.etcdPrefix) }, metrics: observability.processMetrics, logger: logger
    )
    await center.loadInitial()
    try center.register("process") { reader in
        let level = CommonSettings.readLogLevel(reader)
        let observed = ObservabilitySettings.Dynamic.read(reader)
        try reader.finish()
        return {
            LoggingSetup.processLevel.set(level)
            observability.apply(observed)
        }
    }
    return center
}

/// The whole platform in one process: the gateway calls the user service directly
/// (`DirectUnaryCaller`) and the AI service over the in-process gRPC transport. Without `servingHTTP` the gateway's HTTP server is left out: tests drive
/// `gatewayRouter` with Hummingbird's test client.
public func buildAllInOne(
    config: PlatformConfiguration,
    logger: Logger,
    servingHTTP: Bool = true,
    onGatewayRunning: @escaping @Sendable (Int) async -> Void = { _ in },
    onMetricsRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) async throws -> ProcessPlan {
    let observability = try ObservabilityRuntime.read(config: config.reader, sharedProcess: true, logger: logger, onMetricsRunning: onMetricsRunning)
    let center = try await makeConfigurationCenter(config: config, discovery: try readDiscovery(config.reader), observability: observability, logger: logger)
    let reader = center.reader
    let common = CommonSettings.read(SettingsReader(reader))
    let userSettings = try UserServiceSettings.read(SettingsReader(reader), common: common, defaultPort: 0, logger: logger)
    let aiSettings = try AIServiceSettings.read(SettingsReader(reader), common: common, defaultPort: 0)
    let gatewaySettings = try GatewaySettings.read(SettingsReader(reader), common: common, logger: logger)

    // The gateway reaches the services through in-process links: the same generated clients and
    // handlers, and the same interceptors, as between processes, without sockets.
    let userLink = InProcessServiceLink(name: userServiceApplication)
    let aiLink = InProcessServiceLink(name: aiServiceApplication, maxMessageBytes: 64 << 20)
    // Built but never run if a later step fails: their databases are closed here then.
    var built: [GRPCServiceProcess] = []
    do {
        let userProcess = try await buildUserService(
            settings: userSettings, inProcess: userLink, telemetry: try observability.telemetry(component: userServiceApplication),
            logger: logger.labelled(userServiceApplication)
        )
        built.append(userProcess)
        let aiLogger = logger.labelled(aiServiceApplication)
        let aiTelemetry = try observability.telemetry(component: aiServiceApplication)
        let aiRuntime = AIProviderRuntime(settings: aiSettings.providers, telemetry: aiTelemetry, logger: aiLogger)
        return try await aiRuntime.shutDownIfThrowing {
            let aiProcess = try await buildAIService(
                settings: aiSettings, providers: aiRuntime.directory, transcoder: aiRuntime.transcoder, inProcess: aiLink, telemetry: aiTelemetry,
                center: center, rebuildProviders: { aiRuntime.directory(for: $0) }, logger: aiLogger
            )
            built.append(aiProcess)
            var added: [AddedServiceInProcess] = []
            for service in addedServices {
                added.append(try await AddedServiceInProcess.build(
                    service, reader: reader, common: common, callTimeout: gatewaySettings.callTimeout, observability: observability, logger: logger
                ))
                built.append(added[added.count - 1].process)
            }
            let gateway = try await buildGateway(
                settings: gatewaySettings,
                userService: .inProcess(userLink, health: userProcess.health),
                aiService: .inProcess(aiLink, health: aiProcess.health),
                addedServices: added.map(\.connection),
                telemetry: try observability.telemetry(component: gatewayApplication),
                center: center,
                logger: logger.labelled(gatewayApplication),
                onServerRunning: { port in
                    logger.notice("platform ready", metadata: ["url": "http://\(gatewaySettings.listen.host):\(port)"])
                    await onGatewayRunning(port)
                }
            )
            center.markStarted()
            return ProcessPlan(
                services: observability.services + [center] + userProcess.services + [aiRuntime.shutdownHook] + aiProcess.services
                    + added.flatMap(\.process.services) + (servingHTTP ? gateway.services : gateway.background),
                logger: logger,
                drainTime: common.drainTime,
                gatewayRouter: gateway.router
            )
        }
    } catch {
        for process in built { await process.database.shutdown() }
        throw error
    }
}

/// The gateway alone, in front of user and AI services found as `DISCOVERY` says.
public func buildGatewayProcess(config: PlatformConfiguration, logger: Logger, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws -> ProcessPlan {
    let observability = try ObservabilityRuntime.read(config: config.reader, sharedProcess: false, logger: logger)
    let discovery = try readDiscovery(config.reader)
    let center = try await makeConfigurationCenter(config: config, discovery: discovery, observability: observability, logger: logger)
    let reader = center.reader
    let common = CommonSettings.read(SettingsReader(reader))
    var settings = try GatewaySettings.read(SettingsReader(reader), common: common, logger: logger)
    if settings.userServiceAddresses.isEmpty { settings.userServiceAddresses = [HostPort(host: "127.0.0.1", port: 9101)] }
    if settings.aiServiceAddresses.isEmpty { settings.aiServiceAddresses = [HostPort(host: "127.0.0.1", port: 9102)] }
    let watcher = discovery.makeStore().map { RegistryWatcher(store: $0, prefix: discovery.etcdPrefix, logger: logger) }
    let host = settings.listen.host
    let telemetry = try observability.telemetry(component: gatewayApplication)
    watcher?.report(to: telemetry)
    let gateway = try await buildGateway(
        settings: settings,
        userService: .network(discovery.endpoints(for: userServiceApplication, addresses: settings.userServiceAddresses, watcher: watcher)),
        aiService: .network(discovery.endpoints(for: aiServiceApplication, addresses: settings.aiServiceAddresses, watcher: watcher)),
        addedServices: try addedServiceConnections(reader: reader, discovery: discovery, watcher: watcher, callTimeout: settings.callTimeout),
        registry: watcher,
        telemetry: telemetry,
        center: center,
        logger: logger,
        onServerRunning: { port in
            logger.notice("gateway ready", metadata: ["url": "http://\(host):\(port)"])
            await onRunning(port)
        }
    )
    center.markStarted()
    let registryServices: [any Service] = watcher.map { [$0] } ?? []
    return ProcessPlan(services: observability.services + [center] + registryServices + gateway.services, logger: logger, drainTime: common.drainTime)
}

func readDiscovery(_ config: ConfigReader) throws -> DiscoverySettings {
    let reader = SettingsReader(config)
    let discovery = DiscoverySettings.read(reader)
    try reader.finish()
    return discovery
}

/// The registration of a service process when `DISCOVERY=etcd`: after the process's own
/// services, so that it leaves the registry before the server drains.
func registrationServices(_ discovery: DiscoverySettings, service: String, process: GRPCServiceProcess, logger: Logger) -> [any Service] {
    guard let registration = discovery.registration(
        service: service, store: discovery.makeStore(), logger: logger, listening: { try await process.listeningAddress() }
    ) else { return [] }
    return [registration]
}

public func buildUserServiceProcess(config: PlatformConfiguration, logger: Logger) async throws -> ProcessPlan {
    let observability = try ObservabilityRuntime.read(config: config.reader, sharedProcess: false, logger: logger)
    let discovery = try readDiscovery(config.reader)
    let center = try await makeConfigurationCenter(config: config, discovery: discovery, observability: observability, logger: logger)
    let reader = center.reader
    let common = CommonSettings.read(SettingsReader(reader))
    let settings = try UserServiceSettings.read(SettingsReader(reader), common: common, defaultPort: 9101, logger: logger)
    let process = try await buildUserService(settings: settings, telemetry: try observability.telemetry(component: userServiceApplication), logger: logger)
    center.markStarted()
    return ProcessPlan(
        services: observability.services + [center] + process.services
            + registrationServices(discovery, service: userServiceApplication, process: process, logger: logger),
        logger: logger, drainTime: common.drainTime
    )
}

public func buildAIServiceProcess(config: PlatformConfiguration, logger: Logger) async throws -> ProcessPlan {
    let observability = try ObservabilityRuntime.read(config: config.reader, sharedProcess: false, logger: logger)
    let discovery = try readDiscovery(config.reader)
    let center = try await makeConfigurationCenter(config: config, discovery: discovery, observability: observability, logger: logger)
    let reader = center.reader
    let common = CommonSettings.read(SettingsReader(reader))
    let settings = try AIServiceSettings.read(SettingsReader(reader), common: common, defaultPort: 9102)
    let telemetry = try observability.telemetry(component: aiServiceApplication)
    let runtime = AIProviderRuntime(settings: settings.providers, telemetry: telemetry, logger: logger)
    let process = try await runtime.shutDownIfThrowing {
        try await buildAIService(
            settings: settings, providers: runtime.directory, transcoder: runtime.transcoder, telemetry: telemetry,
            center: center, rebuildProviders: { runtime.directory(for: $0) }, logger: logger
        )
    }
    center.markStarted()
    return ProcessPlan(
        services: observability.services + [center] + [runtime.shutdownHook] + process.services
            + registrationServices(discovery, service: aiServiceApplication, process: process, logger: logger),
        logger: logger, drainTime: common.drainTime
    )
}

extension AIProviderRuntime {
    /// Listed before the AI service's own services, so it runs after they stopped.
    var shutdownHook: ShutdownHook {
        ShutdownHook { try? await registry.shutdown() }
    }

    /// `body`'s result; if it throws (a database that refuses the service, say), the providers'
    /// HTTP client is shut down first, since no service group will ever do it.
    func shutDownIfThrowing<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            try? await registry.shutdown()
            throw error
        }
    }
}

extension Logger {
    func labelled(_ application: String) -> Logger {
        var logger = self
        logger[metadataKey: "app"] = .string(application)
        return logger
    }
}
