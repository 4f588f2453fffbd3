import AsyncHTTPClient
import Logging
import Tracing
import NIOCore
import Synchronization

/// The configured providers by name, sharing one HTTP client. Zero providers is a valid setup:
/// the AI service then answers that no provider is available.
public final class ProviderRegistry: Sendable {
    public let names: [String]
    public let defaultName: String?
    private let providers: [String: any AIProvider]
    private let httpClient: HTTPClient?
    private let isShutDown = Mutex(false)

    /// `tracer` puts the current trace context on each provider request (`traceparent`).
    public init(settings: ProviderSettings, tracer: any Tracer = NoOpTracer(), logger: Logger, limits: ProviderLimits = ProviderLimits()) {
        var configuration = HTTPClient.Configuration()
        // A redirect could carry the API key to another host.
        configuration.redirectConfiguration = .disallow
        // One client serves every provider: the longest connect timeout is taken so that no
        // provider gets less than it was configured with; silences inside a stream are bounded
        // by the longest request timeout.
        let connect = settings.providers.map(\.connectTimeout).max() ?? .seconds(5)
        let read = settings.providers.map(\.requestTimeout).max() ?? .seconds(60)
        configuration.timeout = HTTPClient.Configuration.Timeout(
            connect: OpenAICompatibleProvider.timeAmount(connect), read: OpenAICompatibleProvider.timeAmount(read))
        // HTTP/1.1 allows one call per connection, so this bounds the calls in flight per provider
        // (the client's default of 8 would queue every call behind eight slow answers).
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = settings.maxConnectionsPerHost
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)

        var providers: [String: any AIProvider] = [:]
        for provider in settings.providers {
            providers[provider.name] = OpenAICompatibleProvider(configuration: provider, httpClient: client, logger: logger, limits: limits, tracer: tracer)
        }
        self.providers = providers
        self.names = settings.providers.map(\.name)
        self.defaultName = settings.defaultProvider.flatMap { providers[$0] == nil ? nil : $0 }
        self.httpClient = client
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
        guard first, let httpClient else { return }
        try await httpClient.shutdown()
    }
}
