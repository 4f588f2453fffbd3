import AIProviders
import Platform

/// The AI providers this service may call, by configured name, and the one used when a request
/// names none.
public struct AIProviderDirectory: Sendable {
    public var providers: [String: any AIProvider]
    public var defaultName: String?

    public init(providers: [String: any AIProvider], defaultName: String?) {
        self.providers = providers
        self.defaultName = defaultName
    }

    public init(_ providers: [any AIProvider], defaultName: String? = nil) {
        self.init(
            providers: Dictionary(providers.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first }),
            defaultName: defaultName ?? providers.first?.name
        )
    }

    public static let empty = AIProviderDirectory(providers: [:], defaultName: nil)

    public var isEmpty: Bool { providers.isEmpty }

    /// The name a request without one gets: the configured default, else the first by name.
    public var effectiveDefaultName: String? {
        if let defaultName, providers[defaultName] != nil { return defaultName }
        return providers.keys.sorted().first
    }

    static let notConfigured = DomainError(
        .unavailable,
        "no AI provider is configured: set AI_PROVIDERS (e.g. openai) and for each name N "
            + "AI_PROVIDER_<N>_BASE_URL (and AI_PROVIDER_<N>_API_KEY), optionally AI_DEFAULT_PROVIDER"
    )

    /// The provider to invoke: `name`, or the default. Throws `.unavailable` when none is configured.
    func provider(named name: String?) throws(DomainError) -> any AIProvider {
        guard let fallback = effectiveDefaultName else { throw Self.notConfigured }
        let wanted = name ?? fallback
        guard let provider = providers[wanted] else {
            throw DomainError(.notFound, "the AI provider \(wanted.quotedForMessage) is not configured")
        }
        return provider
    }
}
