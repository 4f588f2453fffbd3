import AISaaSProtos
import AKSKSigning
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Hummingbird
import Logging
import NIOCore
import Platform
import ServiceLifecycle

/// Everything the gateway needs, read from configuration.
public struct GatewaySettings: Sendable {
    public var listen: HostPort
    /// Connection timeouts and the connection cap of the HTTP server.
    public var httpLimits: HTTPServerLimits = HTTPServerLimits()
    public var jwtSecret: String
    public var tokenLifetime: TimeInterval
    public var corsOrigins: [String]
    public var loginLimits: LoginThrottle.Limits
    public var trustForwardedFor: Bool
    public var revocationPollInterval: Duration
    public var callTimeout: Duration
    /// Deadline of one call to the AI service: providers are slow, streams long.
    public var aiCallTimeout: Duration
    /// How AK/SK-signed requests are checked.
    public var signing: SignaturePolicy
    /// Addresses of the services; empty in the all-in-one process, which wires its own.
    public var userServiceAddresses: [HostPort]
    public var aiServiceAddresses: [HostPort]
    /// How long a stopping process lets work in flight finish (SHUTDOWN_DRAIN_SECONDS).
    public var drainTime: Duration = .seconds(30)
    /// `OUTLIER_*`: when an instance leaves the rotation (see `OutlierEjection`).
    public var outlierPolicy = OutlierEjection.Policy()

    public static func read(_ settings: SettingsReader, common: CommonSettings, logger: Logger) throws -> GatewaySettings {
        let listen = HostPort(
            host: settings.string("http.host", default: "127.0.0.1"),
            port: settings.int("http.port", default: 9000, range: 0...65535)
        )
        let httpLimits = HTTPServerLimits(
            headerTimeout: .seconds(settings.int("http.header.timeout.seconds", default: 10, range: 1...600)),
            bodyReadTimeout: .seconds(settings.int("http.read.timeout.seconds", default: 30, range: 1...3600)),
            idleTimeout: .seconds(settings.int("http.idle.timeout.seconds", default: 75, range: 1...3600)),
            maxConnections: settings.int("http.max.connections", default: 4096, range: 1...1_000_000)
        )
        let lifetime = settings.int("jwt.expires.in", default: 7 * 86_400, range: 60...(365 * 86_400))
        let dynamic = GatewayDynamicSettings.read(settings)
        let trustForwardedFor = settings.bool("trust.forwarded.for", default: false)
        let poll = settings.int("revocation.poll.milliseconds", default: 2000, range: 100...5000)
        let timeout = settings.int("grpc.timeout.milliseconds", default: 10_000, range: 100...600_000)
        let aiTimeout = settings.int("ai.call.timeout.seconds", default: 300, range: 1...3600)
        let signing = SignaturePolicy(
            clockSkewSeconds: settings.int("aksk.clock.skew.seconds", default: 300, range: 0...3600),
            requireNonce: settings.bool("aksk.require.nonce", default: false)
        )
        let users = HostPort.list("user.service.addrs", from: settings)
        let ai = HostPort.list("ai.service.addrs", from: settings)
        let configuredSecret = settings.string("jwt.secret", isSecret: true)
        if let configuredSecret, configuredSecret.utf8.count < 32 {
            settings.report("JWT_SECRET must be at least 32 characters long")
        }
        let outliers = OutlierEjection.Policy(
            consecutiveFailures: settings.int("outlier.consecutive.failures", default: 3, range: 1...1000),
            baseEjection: .seconds(settings.int("outlier.base.ejection.seconds", default: 5, range: 1...3600)),
            maxEjection: .seconds(settings.int("outlier.max.ejection.seconds", default: 60, range: 1...86_400))
        )
        try settings.finish()
        let secret = try PersistentSecret.resolve(
            configured: configuredSecret, name: "jwt-secret", settingName: "JWT_SECRET",
            byteCount: 48, dataDirectory: common.dataDirectory, logger: logger
        )
        return GatewaySettings(
            listen: listen, httpLimits: httpLimits, jwtSecret: secret, tokenLifetime: TimeInterval(lifetime), corsOrigins: dynamic.corsOrigins,
            loginLimits: dynamic.loginLimits, trustForwardedFor: trustForwardedFor, revocationPollInterval: .milliseconds(poll),
            callTimeout: .milliseconds(timeout), aiCallTimeout: .seconds(aiTimeout), signing: signing,
            userServiceAddresses: users, aiServiceAddresses: ai, drainTime: common.drainTime, outlierPolicy: outliers
        )
    }
}

/// The gateway's settings that apply without a restart.
public struct GatewayDynamicSettings: Sendable {
    /// `CORS_ALLOWED_ORIGINS`.
    public var corsOrigins: [String]
    /// `LOGIN_MAX_FAILURES_PER_USERNAME`, `LOGIN_MAX_FAILURES_PER_ADDRESS`, `LOGIN_FAILURE_WINDOW_SECONDS`,
    /// `REGISTRATION_MAX_PER_ADDRESS`.
    public var loginLimits: LoginThrottle.Limits

    public static func read(_ settings: SettingsReader) -> GatewayDynamicSettings {
        GatewayDynamicSettings(
            corsOrigins: settings.list("cors.allowed.origins"),
            loginLimits: LoginThrottle.Limits(
                perUsername: settings.int("login.max.failures.per.username", default: 5, range: 1...1000),
                perAddress: settings.int("login.max.failures.per.address", default: 20, range: 1...100_000),
                window: TimeInterval(settings.int("login.failure.window.seconds", default: 900, range: 1...86_400)),
                registrationsPerAddress: settings.int("registration.max.per.address", default: 30, range: 1...100_000)
            )
        )
    }
}

/// The gateway, ready to run: its HTTP application and the services that keep it going.
public struct GatewayProcess {
    public let router: Router<GatewayRequestContext>
    /// What the routes need running (service connections, health monitors, the revocation sync),
    /// without the HTTP server: tests drive `router` with Hummingbird's test client over these.
    public let background: [any Service]
    /// The HTTP server, draining its requests within the drain time when the process stops.
    public let server: any Service

    /// Add to a `ServiceGroup` in this order; the HTTP server is last, so it stops first.
    public var services: [any Service] { background + [server] }
}

/// Wires the gateway: gRPC clients for the services, token checks, the routes and middleware.
/// `onServerRunning` receives the bound port (useful with port 0).
public func buildGateway(
    settings: GatewaySettings,
    userService: ServiceConnection,
    aiService: ServiceConnection,
    addedServices: [AddedServiceConnection] = [],
    registry: RegistryWatcher? = nil,
    telemetry: Telemetry = .disabled(component: gatewayApplication),
    center: ConfigurationCenter? = nil,
    logger: Logger,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) async throws -> GatewayProcess {
    // Which calls may run again after an instance went away is decided at each call site
    // (`retryingWhenUnavailable`): reads yes; invocations (a paid provider, billed twice) and
    // signature checks (a second attempt finds its own nonce: a replay) never.
    let userSettings = ServiceClientSettings(callTimeout: settings.callTimeout)
    // Audio travels to and from the AI service: 25 MiB uploads, long speech.
    let aiSettings = ServiceClientSettings(callTimeout: settings.aiCallTimeout, maxMessageBytes: 64 << 20)
    // Outermost, the telemetry sees the call as the gateway waits for it. It only traces (the
    // transport, or the direct caller, keeps the call metrics), so without tracing it is left out
    // of every call's chain.
    let tracing: [any ClientInterceptor] = telemetry.isTracing ? [TelemetryClientInterceptor(telemetry: telemetry)] : []
    let interceptors = tracing + [RequestScopeClientInterceptor()]
    // The AI service records a call the gateway timed out as such (504), not as one its client left.
    let aiInterceptors = tracing + [RequestScopeClientInterceptor(callTimeout: settings.aiCallTimeout)]
    let callMetrics = ClientCallMetrics(telemetry: telemetry)
    var connections: [any Service] = []
    let users: any Grpc_User_V1_UserService.ClientProtocol
    // Instances that fail or stop serving leave each client's rotation (the health monitors
    // report to the same ejection).
    func ejection(_ connection: ServiceConnection) -> OutlierEjection? {
        guard case .network(let endpoints) = connection else { return nil }
        return OutlierEjection(service: endpoints.name, policy: settings.outlierPolicy, telemetry: telemetry, logger: logger)
    }
    let userEjection = ejection(userService), aiEjection = ejection(aiService)
    func observers(_ ejection: OutlierEjection?) -> [any ClientCallObserver] {
        [callMetrics] + (ejection.map { [$0] } ?? [])
    }
    switch userService {
    case .network(let endpoints):
        let ejecting = userEjection.map { endpoints.ejecting($0) } ?? endpoints
        let client = try ServiceClientFactory.make(ejecting, settings: userSettings, interceptors: interceptors, observers: observers(userEjection))
        users = Grpc_User_V1_UserService.Client(wrapping: client)
        connections.append(GRPCClientService(client))
    case .inProcess(let link, _):
        // Every user service call is unary: no transport between the gateway and the service.
        let caller = DirectUnaryCaller(link, callTimeout: userSettings.callTimeout, interceptors: interceptors, observers: [callMetrics])
        users = DirectUserServiceClient(caller: caller)
        connections.append(caller.service)
    }
    let clients: ServiceClients
    switch aiService {
    case .network(let endpoints):
        let ejecting = aiEjection.map { endpoints.ejecting($0) } ?? endpoints
        let client = try ServiceClientFactory.make(ejecting, settings: aiSettings, interceptors: aiInterceptors, observers: observers(aiEjection))
        clients = ServiceClients(users: users, ai: client)
        connections.append(GRPCClientService(client))
    case .inProcess(let link, _):
        let client = ServiceClientFactory.make(link, settings: aiSettings, interceptors: aiInterceptors, observers: [callMetrics])
        clients = ServiceClients(users: users, ai: client)
        connections.append(GRPCClientService(client))
    }
    let revocations = RevocationList()
    let sync = RevocationSync(users: clients.users, revocations: revocations)
    let tokens = await AccessTokens(secret: settings.jwtSecret, lifetime: settings.tokenLifetime, revocations: revocations)

    var monitors = [userService.healthMonitor(ejection: userEjection, logger: logger), aiService.healthMonitor(ejection: aiEjection, logger: logger)]
    // Services added to the platform: a client each, with the same ejection and health, and
    // their routes behind the JWT authentication.
    var addedRoutes: [@Sendable (RouterGroup<GatewayRequestContext>) -> Void] = []
    for added in addedServices {
        let clientSettings = ServiceClientSettings(callTimeout: added.callTimeout)
        let addedEjection = ejection(added.connection)
        let routes = added.routes
        switch added.connection {
        case .network(let endpoints):
            let ejecting = addedEjection.map { endpoints.ejecting($0) } ?? endpoints
            let client = try ServiceClientFactory.make(ejecting, settings: clientSettings, interceptors: interceptors, observers: observers(addedEjection))
            addedRoutes.append { routes.register(client: client, on: $0) }
            connections.append(GRPCClientService(client))
        case .inProcess(let link, _):
            let client = ServiceClientFactory.make(link, settings: clientSettings, interceptors: interceptors, observers: [callMetrics])
            addedRoutes.append { routes.register(client: client, on: $0) }
            connections.append(GRPCClientService(client))
        }
        monitors.append(added.connection.healthMonitor(ejection: addedEjection, logger: logger))
    }
    for monitor in monitors { monitor.reportServing(to: telemetry) }
    let router = try makeGatewayRouter(
        settings: settings, clients: clients, tokens: tokens, revocations: revocations, sync: sync,
        healthMonitors: monitors, addedRoutes: addedRoutes, registry: registry, telemetry: telemetry, center: center, logger: logger
    )
    let app = Application(
        router: router,
        server: .gateway(limits: settings.httpLimits),
        configuration: .init(
            address: .hostname(settings.listen.host, port: settings.listen.port), serverName: nil, backlog: 1024,
            availableConnectionsDelegate: .maximum(settings.httpLimits.maxConnections, logger: logger)
        ),
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? settings.listen.port) },
        logger: logger
    )
    return GatewayProcess(
        router: router,
        background: connections + monitors.map { $0 as any Service } + [
            RevocationSyncService(sync: sync, revocations: revocations, interval: settings.revocationPollInterval, logger: logger),
        ],
        server: DrainLimitedService(app, drainTime: settings.drainTime, name: "gateway", logger: logger)
    )
}

/// The gRPC clients the gateway calls.
public struct ServiceClients: Sendable {
    public var users: any Grpc_User_V1_UserService.ClientProtocol
    public var chatModels: any Grpc_Ai_V1_AiChatModelService.ClientProtocol
    public var speech: any Grpc_Ai_V1_AiSpeechService.ClientProtocol
    public var usage: any Grpc_Ai_V1_AiUsageService.ClientProtocol
    public var openAI: any Grpc_Ai_V1_AiOpenAIService.ClientProtocol

    public init(
        users: any Grpc_User_V1_UserService.ClientProtocol,
        chatModels: any Grpc_Ai_V1_AiChatModelService.ClientProtocol,
        speech: any Grpc_Ai_V1_AiSpeechService.ClientProtocol,
        usage: any Grpc_Ai_V1_AiUsageService.ClientProtocol,
        openAI: any Grpc_Ai_V1_AiOpenAIService.ClientProtocol
    ) {
        self.users = users
        self.chatModels = chatModels
        self.speech = speech
        self.usage = usage
        self.openAI = openAI
    }
}

extension ServiceClients {
    /// The AI service's clients over one connection.
    init(users: any Grpc_User_V1_UserService.ClientProtocol, ai: GRPCClient<some ClientTransport>) {
        self.init(
            users: users,
            chatModels: Grpc_Ai_V1_AiChatModelService.Client(wrapping: ai),
            speech: Grpc_Ai_V1_AiSpeechService.Client(wrapping: ai),
            usage: Grpc_Ai_V1_AiUsageService.Client(wrapping: ai),
            openAI: Grpc_Ai_V1_AiOpenAIService.Client(wrapping: ai)
        )
    }
}

/// The gateway's routes and middleware over any service clients (tests use in-process ones).
public func makeGatewayRouter(
    settings: GatewaySettings,
    clients: ServiceClients,
    tokens: AccessTokens,
    revocations: RevocationList,
    sync: RevocationSync,
    healthMonitors: [InstanceHealthMonitor],
    addedRoutes: [@Sendable (RouterGroup<GatewayRequestContext>) -> Void] = [],
    registry: RegistryWatcher? = nil,
    telemetry: Telemetry = .disabled(component: gatewayApplication),
    center: ConfigurationCenter? = nil,
    logger: Logger
) throws -> Router<GatewayRequestContext> {
    let router = Router(context: GatewayRequestContext.self)
    let routeTable = RouteTable()
    // Outermost: it times and names everything below, CORS preflights included.
    router.add(middleware: HTTPTelemetryMiddleware(telemetry: telemetry, logger: logger))
    let instruments = AuthInstruments(telemetry: telemetry)
    // Dynamic settings: the configuration center replaces them while the gateway runs.
    let origins = LiveSetting(AllowedOrigins(settings.corsOrigins))
    let throttle = LoginThrottle(limits: settings.loginLimits)
    try center?.register(gatewayApplication) { reader in
        let next = GatewayDynamicSettings.read(reader)
        try reader.finish()
        return {
            origins.replace(with: AllowedOrigins(next.corsOrigins))
            throttle.update(next.loginLimits)
        }
    }
    router.add(middleware: AllowListCORSMiddleware(origins: origins))
    router.add(middleware: RequestEnvelopeMiddleware(routes: routeTable, logger: logger))
    // Other replicas' logouts must reach this one within 5 s; past that, fail closed.
    let maxRevocationAge = max(.seconds(5), settings.revocationPollInterval * 3)
    AccountRoutes(
        users: clients.users, tokens: tokens, revocations: revocations, revocationSync: sync,
        throttle: throttle, trustForwardedFor: settings.trustForwardedFor,
        maxRevocationAge: maxRevocationAge
    ).register(on: router)

    let authenticated = router.group().add(middleware: AuthenticationMiddleware(
        tokens: tokens, revocations: revocations, sync: sync, maxRevocationAge: maxRevocationAge
    ))
    ChatModelRoutes(chatModels: clients.chatModels).register(on: authenticated)
    let apiKeys = APIKeyVerifier(users: clients.users, revocations: revocations)
    APIKeyRoutes(users: clients.users, revocations: revocations, apiKeys: apiKeys).register(on: authenticated)
    UsageRoutes(usage: clients.usage, users: clients.users).register(on: authenticated, admin: authenticated.group().add(middleware: adminOnly()))
    for register in addedRoutes { register(authenticated) }

    let signatures = SignatureVerifier(users: clients.users, revocations: revocations, maxRevocationAge: maxRevocationAge)
    let signed = router.group().add(middleware: SignedRequestMiddleware(
        verifier: signatures, policy: settings.signing, maxBodyBytes: 1 << 20, instruments: instruments
    ))
    let signedUpload = router.group().add(middleware: SignedRequestMiddleware(
        verifier: signatures, policy: settings.signing, maxBodyBytes: InvokeRoutes.maxTranscriptionBodyBytes, instruments: instruments
    ))
    InvokeRoutes(chatModels: clients.chatModels, speech: clients.speech).register(json: signed, upload: signedUpload)

    func openAIAuth(maxBodyBytes: Int) -> OpenAIAuthMiddleware {
        OpenAIAuthMiddleware(
            apiKeys: apiKeys, revocations: revocations, sync: sync, maxRevocationAge: maxRevocationAge,
            signed: SignedRequestMiddleware(verifier: signatures, policy: settings.signing, maxBodyBytes: maxBodyBytes, instruments: instruments),
            instruments: instruments
        )
    }
    OpenAIRoutes(openAI: clients.openAI).register(
        json: router.group().add(middleware: openAIAuth(maxBodyBytes: OpenAIRoutes.maxJSONBodyBytes)),
        upload: router.group().add(middleware: openAIAuth(maxBodyBytes: OpenAIRoutes.maxUploadBodyBytes))
    )
    SystemRoutes(
        monitors: healthMonitors, revocations: revocations, maxRevocationAge: maxRevocationAge, registry: registry, configuration: center
    ).register(on: router)
    routeTable.set(router.routes)
    return router
}
