import AIProviders
import Platform
import Testing

@Suite struct ProviderSettingsTests {
    private func read(_ values: [String: String]) -> (ProviderSettings, [String]) {
        let reader = SettingsReader(ConfigurationLoader.fixed(values))
        let settings = ProviderSettings.read(reader)
        do {
            try reader.finish()
            return (settings, [])
        } catch let error as ConfigurationError {
            return (settings, error.problems)
        } catch {
            return (settings, ["\(error)"])
        }
    }

    @Test func noProvidersIsValid() {
        let (settings, problems) = read([:])
        #expect(problems.isEmpty)
        #expect(settings.providers.isEmpty)
        #expect(settings.defaultProvider == nil)
        #expect(settings.ffmpegPath == nil && settings.ffprobePath == nil)
    }

    /// Problems are shown on /health and logged: a refused value that may hold a secret is named,
    /// never quoted.
    @Test func refusedURLsAndQueriesAreNotQuoted() {
        let (_, problems) = read([
            "AI_PROVIDERS": "proxy", "AI_PROVIDER_PROXY_BASE_URL": "https://user:hunter2-secret@proxy.example/v1",
            "AI_PROVIDER_PROXY_QUERY": "key=sk-hunter2-secret&&",
        ])
        #expect(problems.contains { $0.contains("AI_PROVIDER_PROXY_BASE_URL must not contain credentials") }, "\(problems)")
        #expect(problems.contains { $0.contains("AI_PROVIDER_PROXY_QUERY") }, "\(problems)")
        #expect(!problems.joined().contains("hunter2"), "\(problems)")
        let database = DatabaseLocation.parse("mysql://root:hunter2@db/x", defaultSQLitePath: "")
        if case .failure(let error) = database { #expect(!"\(error)".contains("hunter2")) } else { Issue.record("a mysql URL was accepted") }
    }

    @Test func defaultsApply() throws {
        let (settings, problems) = read(["AI_PROVIDERS": "local", "AI_PROVIDER_LOCAL_BASE_URL": "http://127.0.0.1:11434/v1/"])
        #expect(problems.isEmpty)
        let local = try #require(settings.providers.first)
        #expect(local.name == "local")
        #expect(local.baseURL == "http://127.0.0.1:11434/v1")
        #expect(local.apiKey == nil)
        #expect(local.defaults == ProviderModels(chat: "gpt-4o-mini", transcription: "whisper-1", speech: "tts-1", voice: "alloy"))
        #expect(local.requestTimeout == .seconds(60))
        #expect(local.connectTimeout == .seconds(5))
        #expect(local.authStyle == .bearer)
        #expect(local.queryItems.isEmpty)
        #expect(settings.defaultProvider == "local")
    }

    @Test func everyKeyIsRead() throws {
        let (settings, problems) = read([
            "AI_PROVIDERS": "local, azure,openai",
            "AI_PROVIDER_LOCAL_BASE_URL": "http://127.0.0.1:11434/v1",
            "AI_PROVIDER_OPENAI_BASE_URL": "https://api.openai.com/v1",
            "AI_PROVIDER_OPENAI_API_KEY": "sk-live-123",
            "AI_PROVIDER_AZURE_BASE_URL": "https://x.openai.azure.com/openai/deployments/d",
            "AI_PROVIDER_AZURE_API_KEY": "azure-key",
            "AI_PROVIDER_AZURE_AUTH": "api-key",
            "AI_PROVIDER_AZURE_QUERY": "api-version=2024-06-01&x=a%20b",
            "AI_PROVIDER_AZURE_CHAT_MODEL": "gpt-4o",
            "AI_PROVIDER_AZURE_TRANSCRIPTION_MODEL": "whisper",
            "AI_PROVIDER_AZURE_SPEECH_MODEL": "tts-hd",
            "AI_PROVIDER_AZURE_VOICE": "nova",
            "AI_PROVIDER_AZURE_TIMEOUT_SECONDS": "30",
            "AI_PROVIDER_AZURE_CONNECT_TIMEOUT_SECONDS": "2",
            "AI_FFMPEG_PATH": "/bin/sh",
        ])
        #expect(problems.isEmpty)
        #expect(settings.providers.map(\.name) == ["local", "azure", "openai"])
        #expect(settings.defaultProvider == "openai")
        let azure = try #require(settings.providers.first { $0.name == "azure" })
        #expect(azure.apiKey == "azure-key")
        #expect(azure.authStyle == .apiKey)
        #expect(azure.queryItems == [ProviderQueryItem(name: "api-version", value: "2024-06-01"), ProviderQueryItem(name: "x", value: "a b")])
        #expect(azure.defaults == ProviderModels(chat: "gpt-4o", transcription: "whisper", speech: "tts-hd", voice: "nova"))
        #expect(azure.requestTimeout == .seconds(30))
        #expect(azure.connectTimeout == .seconds(2))
        #expect(settings.providers.first { $0.name == "openai" }?.apiKey == "sk-live-123")
        #expect(settings.ffmpegPath == "/bin/sh")
        // The key never shows in a logged configuration.
        #expect(!"\(azure)".contains("azure-key"))
    }

    @Test func explicitDefaultWins() {
        let (settings, problems) = read([
            "AI_PROVIDERS": "openai,local", "AI_DEFAULT_PROVIDER": "local",
            "AI_PROVIDER_OPENAI_BASE_URL": "https://api.openai.com/v1", "AI_PROVIDER_LOCAL_BASE_URL": "http://localhost:8080/v1",
        ])
        #expect(problems.isEmpty)
        #expect(settings.defaultProvider == "local")
    }

    @Test(arguments: [
        (["AI_PROVIDERS": "Open-AI"], "AI_PROVIDERS"),
        (["AI_PROVIDERS": "local,local", "AI_PROVIDER_LOCAL_BASE_URL": "http://a/v1"], "twice"),
        (["AI_PROVIDERS": "local"], "AI_PROVIDER_LOCAL_BASE_URL is required"),
        (["AI_PROVIDERS": "local", "AI_PROVIDER_LOCAL_BASE_URL": "ftp://a/v1"], "AI_PROVIDER_LOCAL_BASE_URL"),
        (["AI_PROVIDERS": "local", "AI_PROVIDER_LOCAL_BASE_URL": "not a url"], "AI_PROVIDER_LOCAL_BASE_URL"),
        (["AI_PROVIDERS": "local", "AI_PROVIDER_LOCAL_BASE_URL": "http:///v1"], "AI_PROVIDER_LOCAL_BASE_URL"),
        (["AI_PROVIDERS": "local", "AI_PROVIDER_LOCAL_BASE_URL": "http://a/v1?x=1"], "AI_PROVIDER_LOCAL_BASE_URL"),
        (["AI_PROVIDERS": "local", "AI_PROVIDER_LOCAL_BASE_URL": "http://u:p@a/v1"], "AI_PROVIDER_LOCAL_BASE_URL"),
        (["AI_PROVIDERS": "local", "AI_PROVIDER_LOCAL_BASE_URL": "http://a/v1", "AI_PROVIDER_LOCAL_AUTH": "basic"], "AI_PROVIDER_LOCAL_AUTH"),
        (["AI_PROVIDERS": "local", "AI_PROVIDER_LOCAL_BASE_URL": "http://a/v1", "AI_PROVIDER_LOCAL_QUERY": "api-version"], "AI_PROVIDER_LOCAL_QUERY"),
        (["AI_PROVIDERS": "local", "AI_PROVIDER_LOCAL_BASE_URL": "http://a/v1", "AI_PROVIDER_LOCAL_QUERY": "=x"], "AI_PROVIDER_LOCAL_QUERY"),
        (["AI_PROVIDERS": "local", "AI_PROVIDER_LOCAL_BASE_URL": "http://a/v1", "AI_PROVIDER_LOCAL_TIMEOUT_SECONDS": "0"], "AI_PROVIDER_LOCAL_TIMEOUT_SECONDS"),
        (["AI_PROVIDERS": "local", "AI_PROVIDER_LOCAL_BASE_URL": "http://a/v1", "AI_PROVIDER_LOCAL_TIMEOUT_SECONDS": "soon"], "AI_PROVIDER_LOCAL_TIMEOUT_SECONDS"),
        (["AI_PROVIDERS": "local", "AI_PROVIDER_LOCAL_BASE_URL": "http://a/v1", "AI_PROVIDER_LOCAL_CONNECT_TIMEOUT_SECONDS": "301"], "AI_PROVIDER_LOCAL_CONNECT_TIMEOUT_SECONDS"),
        (["AI_PROVIDERS": "local", "AI_PROVIDER_LOCAL_BASE_URL": "http://a/v1", "AI_DEFAULT_PROVIDER": "openai"], "AI_DEFAULT_PROVIDER"),
        (["AI_DEFAULT_PROVIDER": "openai"], "AI_DEFAULT_PROVIDER"),
        (["AI_FFMPEG_PATH": "/nonexistent/ffmpeg"], "AI_FFMPEG_PATH"),
        (["AI_FFPROBE_PATH": "/nonexistent/ffprobe"], "AI_FFPROBE_PATH"),
    ])
    func badValuesAreReported(values: [String: String], expected: String) {
        let (_, problems) = read(values)
        #expect(problems.count == 1, "\(problems)")
        #expect(problems.contains { $0.contains(expected) }, "\(problems)")
    }

    @Test func aBadProviderDoesNotHideTheOthers() {
        let (settings, problems) = read([
            "AI_PROVIDERS": "good,bad,UPPER",
            "AI_PROVIDER_GOOD_BASE_URL": "http://a/v1",
            "AI_PROVIDER_BAD_BASE_URL": "mailto:x@y",
            "AI_PROVIDER_BAD_AUTH": "token",
        ])
        #expect(problems.count == 3, "\(problems)")
        #expect(settings.providers.map(\.name) == ["good"])
    }

    @Test func registryServesTheConfiguredProviders() async throws {
        let (settings, _) = read([
            "AI_PROVIDERS": "local,openai",
            "AI_PROVIDER_LOCAL_BASE_URL": "http://127.0.0.1:1/v1", "AI_PROVIDER_OPENAI_BASE_URL": "https://api.openai.com/v1",
        ])
        let registry = ProviderRegistry(settings: settings, logger: .init(label: "test"))
        #expect(registry.names == ["local", "openai"])
        #expect(registry.defaultName == "openai")
        #expect(registry.provider(named: "local")?.name == "local")
        #expect(registry.provider(named: "missing") == nil)
        try await registry.shutdown()
        try await registry.shutdown()

        let empty = ProviderRegistry(settings: ProviderSettings(providers: []), logger: .init(label: "test"))
        #expect(empty.names.isEmpty && empty.defaultName == nil && empty.defaultProvider == nil)
        try await empty.shutdown()
    }
}
