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

/// An `AIProvider` over the OpenAI HTTP API, sharing its HTTP client (`ProviderHTTPClient`) with
/// the other providers.
public struct OpenAICompatibleProvider: AIProvider {
    public let configuration: ProviderConfiguration
    public let limits: ProviderLimits
    let client: ProviderHTTPClient
    /// The base URL taken apart once; nil when it is not an http(s) URL (every call then fails).
    let endpoint: ProviderEndpoint?
    let logger: Logger
    let failures: ProviderFailures
    let tracer: any Tracer

    public var name: String { configuration.name }
    public var defaults: ProviderModels { configuration.defaults }

    public init(
        configuration: ProviderConfiguration, httpClient: ProviderHTTPClient, logger: Logger, limits: ProviderLimits = ProviderLimits(),
        tracer: any Tracer = NoOpTracer()
    ) {
        self.tracer = tracer
        self.configuration = configuration
        self.limits = limits
        self.client = httpClient
        self.endpoint = ProviderEndpoint(baseURL: configuration.baseURL, queryItems: configuration.queryItems)
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
        // Only the answer's head is timed here: a stream may last long; silences are bounded by
        // the client's read timeout.
        let response = try await execute(
            "chat/completions", body: body, contentType: "application/json", accept: "text/event-stream", model: request.model, operation: "chat stream")

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
        let declared = answer.contentType?.split(separator: ";").first.map { $0.trimmingHTTPWhitespace().lowercased() }
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
        read: @escaping @Sendable (ProviderHTTPResponse) async throws -> ByteBuffer
    ) async throws -> Answer {
        do {
            return try await withTimeLimit(configuration.requestTimeout) { [self] in
                let response = try await execute(path, body: body, contentType: contentType, model: model, operation: operation)
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

    /// Sends a POST of `body` to `path` and returns the answer once its head says success.
    func execute(
        _ path: String, body: ByteBuffer, contentType: String, accept: String? = nil, model: String, operation: String
    ) async throws -> ProviderHTTPResponse {
        guard let endpoint else { throw failures.transport(ProviderHTTPError.invalidURL, operation: operation) }
        var headers = HTTPHeaders()
        headers.reserveCapacity(7)
        headers.add(name: "Host", value: endpoint.hostHeader)
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        if let accept { headers.add(name: "Accept", value: accept) }
        if let key = configuration.apiKey, !key.isEmpty {
            switch configuration.authStyle {
            case .bearer: headers.add(name: "Authorization", value: "Bearer \(key)")
            case .apiKey: headers.add(name: "api-key", value: key)
            }
        }
        // The provider call's span (the AI service's) as the parent of whatever the provider traces.
        if let context = InstrumentationContext.current {
            tracer.inject(context, into: &headers, using: HTTPHeadersInjector())
        }
        let request = ProviderHTTPRequest(
            origin: endpoint.origin, head: HTTPRequestHead(version: .http1_1, method: .POST, uri: endpoint.target(path), headers: headers), body: body)
        let response: ProviderHTTPResponse
        do {
            response = try await client.execute(request)
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

    static func json(_ value: some Encodable) throws -> ByteBuffer {
        ByteBuffer(data: try JSONEncoder().encode(value))
    }
}
