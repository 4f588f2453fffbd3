import NIOCore

/// One message of a chat: a role (system, user, assistant…) and its text.
public struct ChatMessage: Sendable, Equatable, Codable {
    public var role: String
    public var content: String
    public var name: String?

    public init(role: String, content: String, name: String? = nil) {
        self.role = role
        self.content = content
        self.name = name
    }
}

/// Tokens a provider counted for one completion.
public struct TokenUsage: Sendable, Equatable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int

    public init(promptTokens: Int, completionTokens: Int, totalTokens: Int) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.totalTokens = totalTokens
    }
}

public struct ChatCompletionRequest: Sendable, Equatable {
    public var model: String
    public var messages: [ChatMessage]
    public var temperature: Double?
    public var maxTokens: Int?

    public init(model: String, messages: [ChatMessage], temperature: Double? = nil, maxTokens: Int? = nil) {
        self.model = model
        self.messages = messages
        self.temperature = temperature
        self.maxTokens = maxTokens
    }
}

public struct ChatChoice: Sendable, Equatable {
    public var index: Int
    public var message: ChatMessage
    public var finishReason: String?

    public init(index: Int, message: ChatMessage, finishReason: String?) {
        self.index = index
        self.message = message
        self.finishReason = finishReason
    }
}

public struct ChatCompletion: Sendable, Equatable {
    public var choices: [ChatChoice]
    public var usage: TokenUsage?

    public init(choices: [ChatChoice], usage: TokenUsage?) {
        self.choices = choices
        self.usage = usage
    }
}

/// New text of one choice in a streamed completion.
public struct ChatDeltaChoice: Sendable, Equatable {
    public var index: Int
    public var role: String?
    public var content: String?
    public var finishReason: String?

    public init(index: Int, role: String? = nil, content: String? = nil, finishReason: String? = nil) {
        self.index = index
        self.role = role
        self.content = content
        self.finishReason = finishReason
    }
}

/// One chunk of a streamed completion; the provider's last chunk carries the usage.
public struct ChatCompletionDelta: Sendable, Equatable {
    public var choices: [ChatDeltaChoice]
    public var usage: TokenUsage?

    public init(choices: [ChatDeltaChoice], usage: TokenUsage? = nil) {
        self.choices = choices
        self.usage = usage
    }
}

public struct TranscriptionRequest: Sendable {
    /// MP3 audio, already transcoded.
    public var audio: ByteBuffer
    public var filename: String
    public var model: String
    public var prompt: String?
    public var language: String?
    public var temperature: Double?

    public init(audio: ByteBuffer, filename: String, model: String, prompt: String? = nil, language: String? = nil, temperature: Double? = nil) {
        self.audio = audio
        self.filename = filename
        self.model = model
        self.prompt = prompt
        self.language = language
        self.temperature = temperature
    }
}

public struct SpeechRequest: Sendable, Equatable {
    public var text: String
    public var model: String
    public var voice: String
    /// mp3, opus, aac, flac, wav or pcm.
    public var format: String

    public init(text: String, model: String, voice: String, format: String) {
        self.text = text
        self.model = model
        self.voice = voice
        self.format = format
    }
}

public struct SpeechAudio: Sendable {
    public var audio: ByteBuffer
    public var contentType: String

    public init(audio: ByteBuffer, contentType: String) {
        self.audio = audio
        self.contentType = contentType
    }
}

/// An AI provider speaking the OpenAI HTTP API (OpenAI, Azure-style endpoints, Ollama, vLLM,
/// llama.cpp…). Failures are thrown as `DomainError`s that never carry the provider's raw answer
/// or its API key:
/// - the provider refused the platform's credentials: `.upstreamFailure`, reason `ProviderRejectedCredentials`;
/// - provider 429: `.resourceExhausted`, reason `ProviderRateLimited`, `retryAfterSeconds` from its `Retry-After`;
/// - provider 5xx, unreadable answer, connection failure: `.upstreamFailure`;
/// - provider 400/404/422 (a bad model name…): `.failedPrecondition` naming the model, reason `ProviderRejectedRequest`;
/// - timeout: `.deadlineExceeded`.
public protocol AIProvider: Sendable {
    /// The name it is configured under (`openai`, `local`…).
    var name: String { get }
    /// Models used when a request does not name one.
    var defaults: ProviderModels { get }

    func complete(_ request: ChatCompletionRequest) async throws -> ChatCompletion
    /// Chunks as the provider sends them (usage requested with `stream_options.include_usage`).
    /// Stopping the iteration or cancelling the task cancels the provider request.
    func stream(_ request: ChatCompletionRequest) async throws -> AsyncThrowingStream<ChatCompletionDelta, any Error>
    func transcribe(_ request: TranscriptionRequest) async throws -> String
    func speak(_ request: SpeechRequest) async throws -> SpeechAudio
}

/// The models (and voice) a provider uses by default.
public struct ProviderModels: Sendable, Equatable {
    public var chat: String
    public var transcription: String
    public var speech: String
    public var voice: String
    public var embedding: String
    /// The models the OpenAI-compatible API offers from this provider (`/v1/models`); the
    /// defaults above unless configured.
    public var exposed: [String]

    public init(
        chat: String, transcription: String = "whisper-1", speech: String = "tts-1", voice: String = "alloy",
        embedding: String = "text-embedding-3-small", exposed: [String]? = nil
    ) {
        self.chat = chat
        self.transcription = transcription
        self.speech = speech
        self.voice = voice
        self.embedding = embedding
        var seen = Set<String>()
        self.exposed = (exposed ?? [chat, transcription, speech, embedding]).filter { seen.insert($0).inserted }
    }
}

/// Audio ready for a provider's transcription endpoint.
public struct TranscodedAudio: Sendable {
    /// Mono MP3 at 64 kbit/s.
    public var mp3: ByteBuffer
    public var durationSeconds: Double

    public init(mp3: ByteBuffer, durationSeconds: Double) {
        self.mp3 = mp3
        self.durationSeconds = durationSeconds
    }
}

/// Turns uploaded audio into what transcription is billed and sent as. Undecodable input throws
/// `DomainError(.invalidArgument, …, reason: "UndecodableAudio")`.
public protocol AudioTranscoding: Sendable {
    func transcodeForTranscription(_ audio: ByteBuffer, fileExtension: String) async throws -> TranscodedAudio
}
