import AIProviders
import Logging
import Platform
import TestSupport

/// A fake provider and a registry whose provider `fake` points at it.
struct ProviderHarness {
    static let apiKey = "sk-test-9f8e7d6c5b4a3210SECRET"

    let fake: FakeProvider
    let registry: ProviderRegistry
    let provider: any AIProvider

    static func run(
        apiKey: String? = ProviderHarness.apiKey,
        authStyle: ProviderAuthStyle = .bearer,
        queryItems: [ProviderQueryItem] = [],
        timeout: Duration = .seconds(10),
        baseURL: String? = nil,
        logger: Logger = Logger(label: "test"),
        _ body: (ProviderHarness) async throws -> Void
    ) async throws {
        let fake = try await FakeProvider.start()
        let configuration = ProviderConfiguration(
            name: "fake", baseURL: baseURL ?? fake.baseURL, apiKey: apiKey,
            defaults: ProviderModels(chat: "fake-chat"), requestTimeout: timeout, connectTimeout: .seconds(2),
            authStyle: authStyle, queryItems: queryItems)
        let registry = ProviderRegistry(settings: ProviderSettings(providers: [configuration]), logger: logger)
        do {
            guard let provider = registry.provider(named: "fake") else { throw DomainError(.internal, "no provider") }
            try await body(ProviderHarness(fake: fake, registry: registry, provider: provider))
        } catch {
            try? await registry.shutdown()
            await fake.stop()
            throw error
        }
        try await registry.shutdown()
        await fake.stop()
    }
}

extension ChatCompletionRequest {
    static func hello(_ text: String = "hello there world") -> ChatCompletionRequest {
        ChatCompletionRequest(
            model: "fake-chat",
            messages: [ChatMessage(role: "system", content: "be brief"), ChatMessage(role: "user", content: text)])
    }
}

/// The `DomainError` `body` threw; nil when it threw nothing or something else.
func domainError(_ body: () async throws -> Void) async -> DomainError? {
    do {
        try await body()
        return nil
    } catch {
        return error as? DomainError
    }
}
