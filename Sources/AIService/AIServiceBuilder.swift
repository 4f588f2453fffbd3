import AIProviders
import Foundation
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
    /// `AI_RATE_LIMIT_PER_MINUTE`: requests per minute per access key; 0 turns the limit off.
    public var rateLimitPerMinute: Int = 600
    /// `AI_PRICES`: the price table, JSON.
    public var prices: PriceTable = PriceTable()
    /// `AI_QUOTA_RESERVATION_SECONDS`: how long a quota reservation outlives a call that never
    /// settled it (its process died) before the budget gets it back.
    public var quotaReservationSeconds: Int = 900
    /// `AI_QUOTA_MIN_CALL_TOKENS`: the least a settled call counts as when admission estimates
    /// the next one, so calls that use no tokens (speech) still reserve something.
    public var quotaMinimumCallTokens: Int = 1
    /// `AI_QUOTA_MIN_CALL_COST`: the same floor for cost (an unpriced model costs 0); above 0.
    public var quotaMinimumCallCost: Double = 0.000_001
    /// `AI_QUOTA_FIRST_CALL_WAIT_SECONDS`: how long a call waits while the reservations of calls in
    /// flight fill the budget (the user's first budgeted call, size unknown, holds all of it),
    /// before it answers 429 + Retry-After.
    public var quotaFirstCallWaitSeconds: Int = 10
    /// `AI_PROVIDERS`, `AI_PROVIDER_<NAME>_…`, `AI_DEFAULT_PROVIDER`, `AI_FFMPEG_PATH`, `AI_FFPROBE_PATH`.
    public var providers: ProviderSettings = ProviderSettings(providers: [])
    /// How long a stopping process lets work in flight finish (SHUTDOWN_DRAIN_SECONDS).
    public var drainTime: Duration = .seconds(30)

    public init(listen: HostPort, database: DatabaseLocation) {
        self.listen = listen
        self.database = database
    }

    /// The settings that apply without a restart: rate limit, quota defaults, prices, providers.
    public mutating func readDynamic(_ settings: SettingsReader) {
        rateLimitPerMinute = settings.int("ai.rate.limit.per.minute", default: 600, range: 0...1_000_000)
        quotaReservationSeconds = settings.int("ai.quota.reservation.seconds", default: 900, range: 10...86_400)
        quotaMinimumCallTokens = settings.int("ai.quota.min.call.tokens", default: 1, range: 1...1_000_000_000)
        quotaFirstCallWaitSeconds = settings.int("ai.quota.first.call.wait.seconds", default: 10, range: 0...600)
        if let text = settings.string("ai.quota.min.call.cost") {
            if let cost = Double(text), cost.isFinite, cost > 0 {
                quotaMinimumCallCost = cost
            } else {
                settings.report("AI_QUOTA_MIN_CALL_COST must be a number above 0")
            }
        }
        if let json = settings.string("ai.prices") {
            switch PriceTable.parse(json: json) {
            case .success(let table): prices = table
            case .failure(let error): settings.report("AI_PRICES \(error.problem)")
            }
        }
        providers = ProviderSettings.read(settings)
    }

    public var quotaPolicy: QuotaPolicy {
        QuotaPolicy(
            reservationLifetime: Double(quotaReservationSeconds), minimumCallTokens: quotaMinimumCallTokens,
            minimumCallCost: quotaMinimumCallCost, firstCallWait: .seconds(quotaFirstCallWaitSeconds)
        )
    }

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
        var result = AIServiceSettings(listen: listen, database: database)
        result.readDynamic(settings)
        result.drainTime = common.drainTime
        try settings.finish()
        return result
    }
}

public let aiServiceApplication = "ai-service"

/// Builds the AI service: opens and migrates its database and prepares its gRPC server.
/// `transcoder` nil means ffmpeg is missing: speech to text then answers UNAVAILABLE. With
/// `inProcess`, the server takes its calls from that link instead of `settings.listen`, and, being
/// the only AI service of the platform, keeps the per-key rate-limit windows in memory
/// (`MemoryRateLimiter`) rather than in the database replicas share.
///
/// With `center`, the dynamic settings (`AI_RATE_LIMIT_PER_MINUTE`, `AI_PRICES`, `AI_QUOTA_*`, and
/// with `rebuildProviders` the providers) follow configuration changes while the process runs.
public func buildAIService(
    settings: AIServiceSettings, providers: AIProviderDirectory = .empty, transcoder: (any AudioTranscoding)? = nil,
    inProcess: InProcessServiceLink? = nil, telemetry: Telemetry = .disabled(component: aiServiceApplication),
    center: ConfigurationCenter? = nil, rebuildProviders: (@Sendable (ProviderSettings) -> AIProviderDirectory)? = nil, logger: Logger
) async throws -> GRPCServiceProcess {
    if providers.isEmpty {
        logger.warning("no AI provider is configured: invocations answer UNAVAILABLE until AI_PROVIDERS and AI_PROVIDER_<NAME>_BASE_URL are set")
    }
    if transcoder == nil {
        logger.warning("ffmpeg was not found: speech to text answers UNAVAILABLE until the ffmpeg package is installed")
    }
    return try await GRPCServiceProcess.build(
        application: aiServiceApplication, listen: inProcess.map { .inProcess($0) } ?? .network(settings.listen), database: settings.database, databaseName: "AI database",
        migrations: AIMigrations.all, logger: logger, drainTime: settings.drainTime,
        // Speech to text uploads up to 25 MiB of audio.
        maxRequestBytes: 32 << 20, telemetry: telemetry
    ) { database in
        let live = AIDomainVersions(
            settings: settings, providers: providers, database: database, transcoder: transcoder, telemetry: telemetry,
            rateLimitWindows: inProcess == nil ? nil : RateLimitWindows(), logger: logger
        )
        let services = makeAIServices(versions: live)
        if let center {
            try center.register(aiServiceApplication) { reader in
                var read = settings
                read.readDynamic(reader)
                try reader.finish()
                let next = read
                // New provider objects only when their settings changed (they hold no state, but
                // a pool of connections is worth keeping).
                let directory = next.providers == live.providerSettings ? nil : rebuildProviders.map { $0(next.providers) }
                return { live.apply(next, providers: directory) }
            }
        }
        return services
    }
}

/// The providers and the ffmpeg that configuration names. The registry owns an HTTP client:
/// shut it down when the process stops. `directory(for:)` makes the providers of new settings
/// over the same client.
public struct AIProviderRuntime: Sendable {
    public let registry: ProviderRegistry
    public let directory: AIProviderDirectory
    public let transcoder: FFmpegAudioTranscoder?

    public init(settings: ProviderSettings, telemetry: Telemetry = .disabled(component: aiServiceApplication), logger: Logger) {
        let registry = ProviderRegistry(settings: settings, tracer: telemetry.tracer, logger: logger)
        self.registry = registry
        directory = Self.directory(of: registry)
        transcoder = FFmpegAudioTranscoder.locate(ffmpegPath: settings.ffmpegPath, ffprobePath: settings.ffprobePath, tracer: telemetry.tracer)
    }

    public func directory(for settings: ProviderSettings) -> AIProviderDirectory {
        guard let replaced = registry.replaced(with: settings) else { return directory }
        return Self.directory(of: replaced)
    }

    static func directory(of registry: ProviderRegistry) -> AIProviderDirectory {
        let providers = registry.names.compactMap { name in registry.provider(named: name).map { (name, $0) } }
        return AIProviderDirectory(providers: Dictionary(providers) { first, _ in first }, defaultName: registry.defaultName)
    }
}

/// The AI service's RPC services over `database`, for the process and for tests.
public func makeAIServices(
    settings: AIServiceSettings, database: ServiceDatabase, providers: AIProviderDirectory,
    transcoder: (any AudioTranscoding)?, telemetry: Telemetry = .disabled(component: aiServiceApplication), logger: Logger
) -> [any RegistrableRPCService] {
    makeAIServices(versions: AIDomainVersions(
        settings: settings, providers: providers, database: database, transcoder: transcoder, telemetry: telemetry, logger: logger
    ))
}

func makeAIServices(versions: AIDomainVersions) -> [any RegistrableRPCService] {
    let live = versions.live
    return [
        ChatModelGRPCService(domain: live),
        SpeechGRPCService(domain: live),
        UsageGRPCService(usage: UsageService(
            usage: SQLUsageRepository(database: versions.database), quotas: SQLQuotaStore(database: versions.database, unbudgeted: versions.unbudgeted))),
        OpenAIGRPCService(domain: live),
    ]
}

/// The AI service's domain services, made again for each version of its dynamic settings: each
/// version is immutable, and a call reads the current one once.
final class AIDomainVersions: Sendable {
    let database: ServiceDatabase
    let live: LiveSetting<AIDomainServices>
    private let transcoder: (any AudioTranscoding)?
    private let instruments: InvocationTelemetry
    private let logger: Logger
    /// The models list's `created`: when the process started, not when settings last changed.
    private let listedSince: Date
    private let providers: LiveSetting<AIProviderDirectory>
    private let appliedProviderSettings: LiveSetting<ProviderSettings>
    /// Rate-limit windows kept in this process; nil: in the database.
    private let rateLimitWindows: RateLimitWindows?
    /// One for every quota store of the process, so that a budget set through one is seen by all.
    let unbudgeted = RecentlyUnbudgeted()
    /// Bookings the database could not take yet, across settings versions.
    private let pending: PendingBookings
    /// The provider settings of the current version.
    var providerSettings: ProviderSettings { appliedProviderSettings.current }

    init(
        settings: AIServiceSettings, providers: AIProviderDirectory, database: ServiceDatabase, transcoder: (any AudioTranscoding)?,
        telemetry: Telemetry, rateLimitWindows: RateLimitWindows? = nil, logger: Logger
    ) {
        let instruments = InvocationTelemetry(telemetry: telemetry)
        let listedSince = Date()
        self.rateLimitWindows = rateLimitWindows
        self.database = database
        self.transcoder = transcoder
        self.instruments = instruments
        self.logger = logger
        self.listedSince = listedSince
        self.providers = LiveSetting(providers)
        appliedProviderSettings = LiveSetting(settings.providers)
        let pending = PendingBookings(
            ledger: SQLInvocationLedger(database: database, quotas: SQLQuotaStore(database: database, unbudgeted: unbudgeted)), logger: logger
        )
        self.pending = pending
        database.beforeShutdown { await pending.finish() }
        live = LiveSetting(Self.make(
            settings, providers: providers, database: database, transcoder: transcoder, instruments: instruments, listedSince: listedSince,
            rateLimitWindows: rateLimitWindows, unbudgeted: unbudgeted, pending: pending, logger: logger
        ))
    }

    /// Puts `settings` in place; `providers` nil keeps the current providers.
    func apply(_ settings: AIServiceSettings, providers directory: AIProviderDirectory?) {
        if let directory {
            providers.replace(with: directory)
            appliedProviderSettings.replace(with: settings.providers)
        }
        live.replace(with: Self.make(
            settings, providers: providers.current, database: database, transcoder: transcoder, instruments: instruments,
            listedSince: listedSince, rateLimitWindows: rateLimitWindows, unbudgeted: unbudgeted, pending: pending, logger: logger
        ))
    }

    private static func make(
        _ settings: AIServiceSettings, providers: AIProviderDirectory, database: ServiceDatabase, transcoder: (any AudioTranscoding)?,
        instruments: InvocationTelemetry, listedSince: Date, rateLimitWindows: RateLimitWindows?, unbudgeted: RecentlyUnbudgeted,
        pending: PendingBookings, logger: Logger
    ) -> AIDomainServices {
        let chatModels = SQLChatModelRepository(database: database)
        var rateLimiter: (any RateLimiter)?
        if settings.rateLimitPerMinute > 0 {
            rateLimiter = rateLimitWindows.map { MemoryRateLimiter(windows: $0, limitPerMinute: settings.rateLimitPerMinute) }
                ?? SQLRateLimiter(database: database, limitPerMinute: settings.rateLimitPerMinute)
        }
        let quotas = SQLQuotaStore(database: database, policy: LiveSetting(settings.quotaPolicy), unbudgeted: unbudgeted)
        let pipeline = InvocationPipeline(
            rateLimiter: rateLimiter,
            quotas: quotas, ledger: SQLInvocationLedger(database: database, quotas: quotas), prices: settings.prices, logger: logger,
            instruments: instruments, observeBookingBatch: database.batchObserver(writer: "usage_ledger"), pending: pending
        )
        return AIDomainServices(
            chatModels: ChatModelManager(repository: chatModels, providers: providers),
            completions: ChatCompletionService(chatModels: chatModels, providers: providers, pipeline: pipeline),
            speech: SpeechService(providers: providers, transcoder: transcoder, pipeline: pipeline),
            openAI: OpenAIService(providers: providers, chatModels: chatModels, transcoder: transcoder, pipeline: pipeline, listedSince: listedSince)
        )
    }
}
