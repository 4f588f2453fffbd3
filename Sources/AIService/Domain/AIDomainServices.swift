/// The AI service's domain services over one version of its dynamic settings (providers, rate
/// limit, prices, quota policy).
public struct AIDomainServices: Sendable {
    public let chatModels: ChatModelManager
    public let completions: ChatCompletionService
    public let speech: SpeechService
    public let openAI: OpenAIService
}
