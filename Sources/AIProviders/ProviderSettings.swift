import Foundation
import Platform

/// How a provider expects the API key: OpenAI and most compatibles take `Authorization: Bearer`,
/// Azure OpenAI takes an `api-key` header.
public enum ProviderAuthStyle: String, Sendable, Equatable, CaseIterable {
    case bearer
    case apiKey = "api-key"
}

/// One `name=value` pair appended to every call's URL (Azure's `api-version=…`).
public struct ProviderQueryItem: Sendable, Equatable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// Everything needed to call one OpenAI-compatible provider.
public struct ProviderConfiguration: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    /// Without a trailing slash, e.g. `https://api.openai.com/v1`.
    public var baseURL: String
    /// Secret: never logged, never put into an error (see `description`).
    public var apiKey: String?
    public var defaults: ProviderModels
    /// Limit for a whole non-streamed call, and for the answer's head (and each silence) of a stream.
    public var requestTimeout: Duration
    public var connectTimeout: Duration
    public var authStyle: ProviderAuthStyle
    public var queryItems: [ProviderQueryItem]

    public init(
        name: String,
        baseURL: String,
        apiKey: String? = nil,
        defaults: ProviderModels = ProviderModels(chat: "gpt-4o-mini"),
        requestTimeout: Duration = .seconds(60),
        connectTimeout: Duration = .seconds(5),
        authStyle: ProviderAuthStyle = .bearer,
        queryItems: [ProviderQueryItem] = []
    ) {
        self.name = name
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.apiKey = apiKey
        self.defaults = defaults
        self.requestTimeout = requestTimeout
        self.connectTimeout = connectTimeout
        self.authStyle = authStyle
        self.queryItems = queryItems
    }

    /// Safe to log: the API key is redacted.
    public var description: String {
        "ProviderConfiguration(name: \(name), baseURL: \(baseURL), apiKey: \(apiKey == nil ? "none" : "<redacted>"), auth: \(authStyle.rawValue))"
    }
}

/// The AI providers and audio tools an AI service process uses.
public struct ProviderSettings: Sendable, Equatable {
    public var providers: [ProviderConfiguration]
    /// nil only when no provider is configured.
    public var defaultProvider: String?
    /// nil: look for `ffmpeg` / `ffprobe` on `PATH`.
    public var ffmpegPath: String?
    public var ffprobePath: String?
    /// Connections kept open to each provider host (`AI_MAX_PROVIDER_CONNECTIONS`): every call in
    /// flight holds one for as long as the provider takes to answer.
    public var maxConnectionsPerHost: Int

    public init(
        providers: [ProviderConfiguration], defaultProvider: String? = nil, ffmpegPath: String? = nil, ffprobePath: String? = nil,
        maxConnectionsPerHost: Int = 512
    ) {
        self.maxConnectionsPerHost = maxConnectionsPerHost
        self.providers = providers
        self.defaultProvider = defaultProvider
            ?? (providers.contains { $0.name == "openai" } ? "openai" : providers.first?.name)
        self.ffmpegPath = ffmpegPath
        self.ffprobePath = ffprobePath
    }

    /// Reads `AI_PROVIDERS`, `AI_PROVIDER_<NAME>_…`, `AI_DEFAULT_PROVIDER`, `AI_FFMPEG_PATH` and
    /// `AI_FFPROBE_PATH`; problems are recorded in `settings` for its `finish()`.
    public static func read(_ settings: SettingsReader) -> ProviderSettings {
        var providers: [ProviderConfiguration] = []
        for name in settings.list("ai.providers") {
            guard isValidName(name) else {
                settings.report("AI_PROVIDERS: provider name '\(name)' must be lower-case letters and digits only")
                continue
            }
            guard !providers.contains(where: { $0.name == name }) else {
                settings.report("AI_PROVIDERS: provider '\(name)' is listed twice")
                continue
            }
            if let provider = readProvider(name, settings) {
                providers.append(provider)
            }
        }

        var defaultProvider = providers.contains { $0.name == "openai" } ? "openai" : providers.first?.name
        if let chosen = settings.string("ai.default.provider") {
            if providers.contains(where: { $0.name == chosen }) {
                defaultProvider = chosen
            } else {
                settings.report("AI_DEFAULT_PROVIDER '\(chosen)' is not one of the providers in AI_PROVIDERS")
            }
        }

        return ProviderSettings(
            providers: providers,
            defaultProvider: defaultProvider,
            ffmpegPath: readExecutable("ai.ffmpeg.path", "AI_FFMPEG_PATH", settings),
            ffprobePath: readExecutable("ai.ffprobe.path", "AI_FFPROBE_PATH", settings),
            maxConnectionsPerHost: settings.int("ai.max.provider.connections", default: 512, range: 1...100_000)
        )
    }

    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) }
    }

    private static func readProvider(_ name: String, _ settings: SettingsReader) -> ProviderConfiguration? {
        let key = "ai.provider.\(name)"
        let env = "AI_PROVIDER_\(name.uppercased())"
        var valid = true

        let baseURL = settings.string("\(key).base.url")
        if let baseURL {
            if let problem = problemWithBaseURL(baseURL) {
                // Not quoted: a refused URL may carry credentials, and problems are shown on /health.
                settings.report("\(env)_BASE_URL \(problem)")
                valid = false
            }
        } else {
            settings.report("\(env)_BASE_URL is required for provider '\(name)' listed in AI_PROVIDERS")
            valid = false
        }

        let authText = settings.string("\(key).auth", default: ProviderAuthStyle.bearer.rawValue).lowercased()
        let authStyle = ProviderAuthStyle(rawValue: authText) ?? {
            settings.report("\(env)_AUTH must be bearer or api-key, got '\(authText)'")
            valid = false
            return .bearer
        }()

        var queryItems: [ProviderQueryItem] = []
        if let query = settings.string("\(key).query") {
            if let items = parseQuery(query) {
                queryItems = items
            } else {
                // Not quoted: a query may carry a key.
                settings.report("\(env)_QUERY must be name=value pairs joined by '&' (e.g. api-version=2024-06-01)")
                valid = false
            }
        }

        let defaults = ProviderModels(
            chat: settings.string("\(key).chat.model", default: "gpt-4o-mini"),
            transcription: settings.string("\(key).transcription.model", default: "whisper-1"),
            speech: settings.string("\(key).speech.model", default: "tts-1"),
            voice: settings.string("\(key).voice", default: "alloy"),
            embedding: settings.string("\(key).embedding.model", default: "text-embedding-3-small"),
            exposed: { let listed = settings.list("\(key).models"); return listed.isEmpty ? nil : listed }()
        )
        let timeout = settings.int("\(key).timeout.seconds", default: 60, range: 1...3600)
        let connectTimeout = settings.int("\(key).connect.timeout.seconds", default: 5, range: 1...300)

        guard valid, let baseURL else { return nil }
        return ProviderConfiguration(
            name: name,
            baseURL: baseURL,
            apiKey: settings.string("\(key).api.key", isSecret: true),
            defaults: defaults,
            requestTimeout: .seconds(timeout),
            connectTimeout: .seconds(connectTimeout),
            authStyle: authStyle,
            queryItems: queryItems
        )
    }

    private static func problemWithBaseURL(_ text: String) -> String? {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            return "must be an http or https URL"
        }
        guard scheme == "http" || scheme == "https" else { return "must be an http or https URL" }
        guard let host = components.host, !host.isEmpty else { return "must name a host" }
        guard components.query == nil, components.fragment == nil else {
            return "must not contain a query or fragment (use the _QUERY setting)"
        }
        guard components.user == nil, components.password == nil else { return "must not contain credentials" }
        return nil
    }

    static func parseQuery(_ text: String) -> [ProviderQueryItem]? {
        var items: [ProviderQueryItem] = []
        for pair in text.split(separator: "&", omittingEmptySubsequences: false) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
            let name = String(parts[0]).removingPercentEncoding ?? String(parts[0])
            let value = String(parts[1]).removingPercentEncoding ?? String(parts[1])
            items.append(ProviderQueryItem(name: name, value: value))
        }
        return items
    }

    private static func readExecutable(_ key: String, _ env: String, _ settings: SettingsReader) -> String? {
        guard let path = settings.string(key) else { return nil }
        guard FileManager.default.isExecutableFile(atPath: path) else {
            settings.report("\(env) '\(path)' is not an executable file")
            return nil
        }
        return path
    }
}
