import Logging
import Tracing
import NIOCore
import Synchronization

/// The configured providers by name, sharing one HTTP client (`ProviderHTTPClient`). Zero providers is a valid setup:
/// the AI service then answers that no provider is available.
public final class ProviderRegistry: Sendable {
    public let names: [String]
    public let defaultName: String?
    private let providers: [String: any AIProvider]
    private let httpClient: ProviderHTTPClient?
    /// Whether `shutdown()` closes `httpClient` (a registry made by `replaced(with:)` borrows it).
    private let ownsClient: Bool
    private let isShutDown = Mutex(false)
    private let make: (@Sendable (ProviderConfiguration, ProviderHTTPClient) -> any AIProvider)?

    /// `tracer` puts the current trace context on each provider request (`traceparent`).
    public convenience init(settings: ProviderSettings, tracer: any Tracer = NoOpTracer(), logger: Logger, limits: ProviderLimits = ProviderLimits()) {
        // One client serves every provider: the longest connect timeout is taken so that no
        // provider gets less than it was configured with; silences are bounded by the longest
        // request timeout. A redirect is an answer like any other (never followed: it could
        // carry the API key to another host).
        let connect = settings.providers.map(\.connectTimeout).max() ?? .seconds(5)
        let read = settings.providers.map(\.requestTimeout).max() ?? .seconds(60)
        // HTTP/1.1 allows one call per connection, so this bounds the calls in flight per provider.
        let client = ProviderHTTPClient(connectTimeout: connect, readTimeout: read, maxConnectionsPerOrigin: settings.maxConnectionsPerHost)

        let make: @Sendable (ProviderConfiguration, ProviderHTTPClient) -> any AIProvider = { configuration, clients in
            OpenAICompatibleProvider(configuration: configuration, httpClient: clients, logger: logger, limits: limits, tracer: tracer)
        }
        self.init(settings: settings, client: client, ownsClient: true, make: make)
    }

    private init(
        settings: ProviderSettings, client: ProviderHTTPClient, ownsClient: Bool,
        make: @escaping @Sendable (ProviderConfiguration, ProviderHTTPClient) -> any AIProvider
    ) {
        var providers: [String: any AIProvider] = [:]
        for provider in settings.providers {
            providers[provider.name] = make(provider, client)
        }
        self.providers = providers
        self.names = settings.providers.map(\.name)
        self.defaultName = settings.defaultProvider.flatMap { providers[$0] == nil ? nil : $0 }
        self.httpClient = client
        self.ownsClient = ownsClient
        self.make = make
    }

    /// The providers `settings` names, over this registry's HTTP client: a configuration change
    /// (providers, base URLs, keys, models) without a new connection pool. The client's own
    /// limits (`AI_MAX_PROVIDER_CONNECTIONS`, the longest timeouts) stay those of the start.
    /// Nil for a registry of test doubles.
    public func replaced(with settings: ProviderSettings) -> ProviderRegistry? {
        guard let httpClient, let make else { return nil }
        return ProviderRegistry(settings: settings, client: httpClient, ownsClient: false, make: make)
    }

    /// Providers made elsewhere (test doubles); `shutdown()` then has nothing to close.
    public init(providers: [any AIProvider], defaultName: String? = nil) {
        var byName: [String: any AIProvider] = [:]
        var names: [String] = []
        for provider in providers where byName[provider.name] == nil {
            byName[provider.name] = provider
            names.append(provider.name)
        }
        self.providers = byName
        self.names = names
        self.defaultName = defaultName ?? (byName["openai"] == nil ? names.first : "openai")
        self.httpClient = nil
        self.ownsClient = false
        self.make = nil
    }

    public func provider(named name: String) -> (any AIProvider)? {
        providers[name]
    }

    public var defaultProvider: (any AIProvider)? {
        defaultName.flatMap { providers[$0] }
    }

    /// Closes the shared HTTP client; safe to call more than once.
    public func shutdown() async throws {
        let first = isShutDown.withLock { done in
            defer { done = true }
            return !done
        }
        guard first, ownsClient, let httpClient else { return }
        await httpClient.shutdown()
    }
}
