import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import Platform
import Tracing

/// Most a provider may send back: a JSON answer, an audio answer, one streamed event.
public struct ProviderLimits: Sendable, Equatable {
    public var maxJSONBytes: Int
    public var maxAudioBytes: Int
    public var maxStreamEventBytes: Int

    public init(maxJSONBytes: Int = 10 << 20, maxAudioBytes: Int = 50 << 20, maxStreamEventBytes: Int = 1 << 20) {
        self.maxJSONBytes = maxJSONBytes
        self.maxAudioBytes = maxAudioBytes
        self.maxStreamEventBytes = maxStreamEventBytes
    }
}

/// An `AIProvider` over the OpenAI HTTP API, sharing its HTTP clients (one per event loop) with the
/// other providers.
public struct OpenAICompatibleProvider: AIProvider {
    public let configuration: ProviderConfiguration
    public let limits: ProviderLimits
    let clients: LoopLocalHTTPClients
    let logger: Logger
    let failures: ProviderFailures
    let tracer: any Tracer

    public var name: String { configuration.name }
    public var defaults: ProviderModels { configuration.defaults }

    public init(
        configuration: ProviderConfiguration, httpClients: LoopLocalHTTPClients, logger: Logger, limits: ProviderLimits = ProviderLimits(),
        tracer: any Tracer = NoOpTracer()
    ) {
        self.tracer = tracer
        self.configuration = configuration
        self.limits = limits
        self.clients = httpClients
        var logger = logger
        logger[metadataKey: "provider"] = "\(configuration.name)"
        self.logger = logger
        self.failures = ProviderFailures(provider: configuration.name, apiKey: configuration.apiKey, logger: logger)
    }

    public func complete(_ request: ChatCompletionRequest) async throws -> ChatCompletion {
        let body = try Self.json(OpenAIWire.ChatRequest(request, stream: false))
        let answer = try await call("chat/completions", body: body, contentType: "application/json", model: request.model, operation: "chat") {
            response in try await response.body.collect(upTo: limits.maxJSONBytes)
        }
        guard let decoded = try? JSONDecoder().decode(OpenAIWire.ChatResponse.self, from: answer.body) else {
            throw failures.unreadable(operation: "chat")
        }
        let choices = decoded.choices.enumerated().map { offset, choice in
            ChatChoice(
                index: choice.index ?? offset,
                message: ChatMessage(role: choice.message.role ?? "assistant", content: choice.message.content ?? ""),
                finishReason: choice.finishReason)
        }
        return ChatCompletion(choices: choices, usage: decoded.usage?.tokenUsage)
    }

    public func stream(_ request: ChatCompletionRequest) async throws -> AsyncThrowingStream<ChatCompletionDelta, any Error> {
        let body = try Self.json(OpenAIWire.ChatRequest(request, stream: true))
        var http = makeRequest("chat/completions", body: body, contentType: "application/json")
        http.headers.add(name: "Accept", value: "text/event-stream")
        // Only the answer's head is timed here: a stream may last long; silences are bounded by
        // the client's read timeout.
        let response = try await execute(http, model: request.model, operation: "chat stream")

        let (stream, continuation) = AsyncThrowingStream.makeStream(of: ChatCompletionDelta.self)
        let reader = StreamReader(failures: failures, maxEventBytes: limits.maxStreamEventBytes)
        let task = Task.onCurrentLoop {
            do {
                try await reader.read(response.body, into: continuation)
                continuation.finish()
            } catch {
                continuation.finish(throwing: failures.transport(error, operation: "chat stream"))
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    public func transcribe(_ request: TranscriptionRequest) async throws -> String {
        var form = MultipartFormData()
        form.addFile("file", filename: request.filename, contentType: "audio/mpeg", data: request.audio)
        form.addField("model", request.model)
        if let prompt = request.prompt { form.addField("prompt", prompt) }
        if let language = request.language { form.addField("language", language) }
        if let temperature = request.temperature { form.addField("temperature", String(temperature)) }
        form.addField("response_format", "json")

        let answer = try await call(
            "audio/transcriptions", body: form.finished(), contentType: form.contentType, model: request.model, operation: "transcription"
        ) { response in try await response.body.collect(upTo: limits.maxJSONBytes) }
        guard let decoded = try? JSONDecoder().decode(OpenAIWire.TranscriptionResponse.self, from: answer.body) else {
            throw failures.unreadable(operation: "transcription")
        }
        return decoded.text
    }

    public func speak(_ request: SpeechRequest) async throws -> SpeechAudio {
        let body = try Self.json(
            OpenAIWire.SpeechRequest(model: request.model, input: request.text, voice: request.voice, responseFormat: request.format))
        let answer = try await call("audio/speech", body: body, contentType: "application/json", model: request.model, operation: "speech") {
            response in try await response.body.collect(upTo: limits.maxAudioBytes)
        }
        let declared = answer.contentType?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        if declared == "application/json" || declared?.hasPrefix("text/") == true || answer.body.readableBytes == 0 {
            throw failures.unreadable(operation: "speech")
        }
        let contentType: String
        if let declared, declared != "application/octet-stream", !declared.isEmpty {
            contentType = declared
        } else {
            contentType = Self.contentType(forAudioFormat: request.format)
        }
        return SpeechAudio(audio: answer.body, contentType: contentType)
    }

    /// The MIME type OpenAI's speech formats are served as.
    public static func contentType(forAudioFormat format: String) -> String {
        switch format.lowercased() {
        case "mp3": "audio/mpeg"
        case "opus": "audio/ogg"
        case "aac": "audio/aac"
        case "flac": "audio/flac"
        case "wav": "audio/wav"
        case "pcm": "audio/pcm"
        default: "application/octet-stream"
        }
    }

    // MARK: - HTTP

    struct Answer: Sendable {
        var body: ByteBuffer
        var contentType: String?
    }

    /// A whole call (head and body) within the request timeout.
    func call(
        _ path: String, body: ByteBuffer, contentType: String, model: String, operation: String,
        read: @escaping @Sendable (HTTPClientResponse) async throws -> ByteBuffer
    ) async throws -> Answer {
        let request = makeRequest(path, body: body, contentType: contentType)
        do {
            return try await withTimeLimit(configuration.requestTimeout) { [self] in
                let response = try await execute(request, model: model, operation: operation)
                do {
                    return Answer(body: try await read(response), contentType: response.headers.first(name: "content-type"))
                } catch {
                    throw failures.transport(error, operation: operation)
                }
            }
        } catch is TimeLimitExceeded {
            throw failures.timedOut(operation: operation)
        }
    }

    /// Sends the request and returns the response once its head says success.
    func execute(_ request: HTTPClientRequest, model: String, operation: String) async throws -> HTTPClientResponse {
        var request = request
        // The provider call's span (the AI service's) as the parent of whatever the provider traces.
        if let context = InstrumentationContext.current {
            tracer.inject(context, into: &request.headers, using: HTTPHeadersInjector())
        }
        let response: HTTPClientResponse
        do {
            response = try await clients.current.execute(request, deadline: .now() + Self.timeAmount(configuration.requestTimeout), logger: logger)
        } catch {
            throw failures.transport(error, operation: operation)
        }
        guard (200..<300).contains(response.status.code) else {
            let body = try? await response.body.collect(upTo: 64 << 10)
            throw failures.rejected(
                status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) }, body: body, model: model,
                operation: operation)
        }
        return response
    }

    func makeRequest(_ path: String, body: ByteBuffer, contentType: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url(path))
        request.method = .POST
        request.headers.add(name: "Content-Type", value: contentType)
        if let key = configuration.apiKey, !key.isEmpty {
            switch configuration.authStyle {
            case .bearer: request.headers.add(name: "Authorization", value: "Bearer \(key)")
            case .apiKey: request.headers.add(name: "api-key", value: key)
            }
        }
        request.body = .bytes(body)
        return request
    }

    func url(_ path: String) -> String {
        let base = configuration.baseURL + "/" + path
        guard !configuration.queryItems.isEmpty else { return base }
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=+#")
        let query = configuration.queryItems.map { item in
            (item.name.addingPercentEncoding(withAllowedCharacters: allowed) ?? item.name) + "="
                + (item.value.addingPercentEncoding(withAllowedCharacters: allowed) ?? item.value)
        }
        return base + "?" + query.joined(separator: "&")
    }

    static func json(_ value: some Encodable) throws -> ByteBuffer {
        ByteBuffer(data: try JSONEncoder().encode(value))
    }

    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
