import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization
import WireFormats

/// An OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks. It records every
/// request and can be told at run time how to answer (normally, late, streamed in pieces,
/// failing, rate limiting, hanging, demanding an API key).
///
///     let fake = try await FakeProvider.start()
///     fake.setBehavior(.fail(status: 500))
///     … point a provider at fake.baseURL, call it, look at fake.requests / fake.counters …
///     await fake.stop()
///
/// Answers: chat → "echo: <last user message>", usage prompt_tokens = words across all messages,
/// completion_tokens = words of the reply; with `tools` and no tool result yet, a call of the
/// first tool instead, and after a `tool` message "echo: <tool result>"; transcription →
/// `transcriptionText` (translation → "translated: " + it); speech → a few bytes that start like
/// a file of the requested format; embeddings → 8 numbers per input derived from its text,
/// as floats or base64 as asked, usage prompt_tokens = words.
public final class FakeProvider: Sendable {
    public enum Behavior: Sendable, Equatable {
        /// Answer at once.
        case answer
        /// Answer after this long (a client leaving meanwhile counts as abandoned).
        case delay(Duration)
        /// This HTTP status with an OpenAI-style JSON error body.
        case fail(status: Int)
        /// 429 with `Retry-After`.
        case rateLimit(retryAfterSeconds: Int)
        /// Never answer; ends when the client closes the connection or the fake stops.
        case hang
        /// Exactly this status, content type and body (a provider's broken answer).
        case raw(status: Int, contentType: String, body: String)
    }

    public enum Endpoint: String, Sendable, CaseIterable {
        case chat, transcription, translation, speech, embeddings, models
    }

    /// How a streamed chat answer is sent.
    public struct Streaming: Sendable, Equatable {
        /// Pieces the reply text is cut into (at most one per character).
        public var chunks: Int
        /// Pause before each event after the first.
        public var interval: Duration
        /// `\r\n` instead of `\n` line ends.
        public var crlf: Bool
        /// Each event written in two network writes, cut in the middle.
        public var fragmented: Bool
        /// `: keep-alive` comment lines between events.
        public var comments: Bool

        public init(chunks: Int = 3, interval: Duration = .zero, crlf: Bool = false, fragmented: Bool = false, comments: Bool = false) {
            self.chunks = chunks
            self.interval = interval
            self.crlf = crlf
            self.fragmented = fragmented
            self.comments = comments
        }
    }

    public struct UploadedFile: Sendable, Equatable {
        public var filename: String?
        public var contentType: String?
        public var data: [UInt8]
    }

    /// The parts of a `multipart/form-data` body.
    public struct Form: Sendable, Equatable {
        public var fields: [String: String] = [:]
        public var files: [String: UploadedFile] = [:]
    }

    public struct RecordedRequest: Sendable {
        public var method: String
        /// Without the query, e.g. `/v1/chat/completions`.
        public var path: String
        public var query: String?
        /// Lower-cased names; repeated headers joined with ", ".
        public var headers: [String: String]
        public var body: [UInt8]
        /// Set for `multipart/form-data` bodies.
        public var form: Form?

        public func header(_ name: String) -> String? { headers[name.lowercased()] }

        /// The body as a JSON object, if it is one.
        public var json: [String: Any]? {
            (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
        }
    }

    /// What happened to streams and waiting requests so far.
    public struct Counters: Sendable, Equatable {
        public var streamsStarted = 0
        public var streamsCompleted = 0
        /// Streams whose client went away (or cancelled) before the end.
        public var streamsAbandoned = 0
        /// Delayed or hanging requests whose client went away before an answer.
        public var requestsAbandoned = 0
    }

    private struct Settings {
        var behavior: Behavior = .answer
        var endpointBehaviors: [Endpoint: Behavior] = [:]
        var streaming = Streaming()
        var requiredAPIKey: String?
        var chatReply: String?
        var transcriptionText = "hello from the fake provider"
        var speechDeclaresContentType = true
        var models = ["gpt-4o-mini", "whisper-1", "tts-1"]
        var recordingLimit = 10_000
    }

    private struct State {
        var settings = Settings()
        var requests: [RecordedRequest] = []
        var counters = Counters()
        var stopped = false
    }

    private let state = Mutex(State())
    private let server: Mutex<Task<Void, Never>?> = Mutex(nil)
    public let port: Int
    /// `http://127.0.0.1:PORT/v1`, what a provider's base URL is set to.
    public let baseURL: String

    private init(host: String, port: Int) {
        self.port = port
        self.baseURL = "http://\(host):\(port)/v1"
    }

    public struct StartFailed: Error {}

    /// Starts a fake on a free port of `host` (127.0.0.1 unless a test's network says otherwise).
    public static func start(host: String = "127.0.0.1", logger: Logger? = nil) async throws -> FakeProvider {
        // Hummingbird reports the cancellation that stops it as an error: quiet unless asked.
        let logger = logger ?? {
            var quiet = Logger(label: "fake-provider")
            quiet.logLevel = .critical
            return quiet
        }()
        let box = Mutex<FakeProvider?>(nil)
        let responder = CallbackResponder<FakeProviderContext> { request, context in
            guard let fake = box.withLock({ $0 }) else { return Response(status: .serviceUnavailable) }
            return try await fake.respond(to: request, context: context)
        }
        let running: RunningServer
        do {
            running = try await RunningServer.start { onServerRunning in
                Application(
                    responder: responder,
                    server: .http1(configuration: .init(additionalChannelHandlers: [CloseWhenClientLeaves()])),
                    configuration: ApplicationConfiguration(address: .hostname(host, port: 0), serverName: "fake-provider"),
                    onServerRunning: onServerRunning, logger: logger
                )
            }
        } catch {
            throw StartFailed()
        }
        let fake = FakeProvider(host: host, port: running.port)
        box.withLock { $0 = fake }
        fake.server.withLock { $0 = running.task }
        return fake
    }

    /// Stops the server; hanging requests end at once.
    public func stop() async {
        state.withLock { $0.stopped = true }
        let task = server.withLock { task in
            defer { task = nil }
            return task
        }
        task?.cancel()
        await task?.value
    }

    // MARK: - Control

    /// How every endpoint answers (unless set per endpoint).
    public func setBehavior(_ behavior: Behavior) {
        state.withLock {
            $0.settings.behavior = behavior
            $0.settings.endpointBehaviors = [:]
        }
    }

    public func setBehavior(_ behavior: Behavior, for endpoint: Endpoint) {
        state.withLock { $0.settings.endpointBehaviors[endpoint] = behavior }
    }

    public func setStreaming(_ streaming: Streaming) {
        state.withLock { $0.settings.streaming = streaming }
    }

    /// nil: any or no key is accepted. Otherwise `Authorization: Bearer KEY` or `api-key: KEY`, else 401.
    public func requireAPIKey(_ key: String?) {
        state.withLock { $0.settings.requiredAPIKey = key }
    }

    /// A fixed chat reply instead of the echo.
    public func setChatReply(_ reply: String?) {
        state.withLock { $0.settings.chatReply = reply }
    }

    public func setTranscriptionText(_ text: String) {
        state.withLock { $0.settings.transcriptionText = text }
    }

    /// false: speech answers are sent as `application/octet-stream`.
    public func setSpeechDeclaresContentType(_ declares: Bool) {
        state.withLock { $0.settings.speechDeclaresContentType = declares }
    }

    /// Requests kept (the oldest are dropped past it, so a long benchmark stays small).
    public func setRecordingLimit(_ limit: Int) {
        state.withLock { $0.settings.recordingLimit = max(0, limit) }
    }

    /// Every request received so far, oldest first.
    public var requests: [RecordedRequest] { state.withLock { $0.requests } }

    public func requests(to endpoint: Endpoint) -> [RecordedRequest] {
        requests.filter { Self.endpoint(forPath: $0.path) == endpoint }
    }

    public func clearRequests() {
        state.withLock { $0.requests = [] }
    }

    public var counters: Counters { state.withLock { $0.counters } }

    /// Polls until `condition` holds or `timeout` passes; returns whether it held.
    public func waitUntil(timeout: Duration = .seconds(5), _ condition: @Sendable (Counters) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition(counters) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition(counters)
    }

    // MARK: - Serving

    private static func endpoint(forPath path: String) -> Endpoint? {
        switch path {
        case "/v1/chat/completions": .chat
        case "/v1/audio/transcriptions": .transcription
        case "/v1/audio/translations": .translation
        case "/v1/audio/speech": .speech
        case "/v1/embeddings": .embeddings
        case "/v1/models": .models
        default: nil
        }
    }

    private struct ClientGone: Error {}

    private func respond(to request: Request, context: FakeProviderContext) async throws -> Response {
        let body = try await request.body.collect(upTo: 200 << 20)
        var headers: [String: String] = [:]
        for field in request.headers {
            let name = field.name.canonicalName
            headers[name] = headers[name].map { $0 + ", " + field.value } ?? field.value
        }
        var recorded = RecordedRequest(
            method: request.method.rawValue, path: request.uri.path, query: request.uri.query, headers: headers,
            body: Array(body.readableBytesView))
        if let contentType = headers["content-type"], contentType.lowercased().hasPrefix("multipart/form-data") {
            recorded.form = Self.parseMultipart(recorded.body, contentType: contentType)
        }
        let endpoint = Self.endpoint(forPath: recorded.path)
        let settings = state.withLock { state in
            state.requests.append(recorded)
            if state.requests.count > state.settings.recordingLimit { state.requests.removeFirst() }
            return state.settings
        }
        guard let endpoint else { return Self.error(status: 404, message: "unknown path", code: "not_found") }

        if let key = settings.requiredAPIKey {
            let presented = headers["api-key"] ?? headers["authorization"].map { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : $0 }
            if presented != key {
                // Like OpenAI, echo what was presented: a client must never pass this on.
                return Self.error(status: 401, message: "Incorrect API key provided: \(presented ?? "none")", code: "invalid_api_key")
            }
        }

        switch settings.endpointBehaviors[endpoint] ?? settings.behavior {
        case .answer:
            break
        case .delay(let delay):
            try await waitWhileConnected(delay, context)
        case .fail(let status):
            let code = status == 404 ? "model_not_found" : "fake_failure"
            return Self.error(status: status, message: "the fake provider failed as told (HTTP \(status))", code: code)
        case .rateLimit(let seconds):
            var response = Self.error(status: 429, message: "rate limited by the fake provider", code: "rate_limit_exceeded")
            response.headers[.retryAfter] = String(seconds)
            return response
        case .hang:
            try await waitWhileConnected(nil, context)
            return Response(status: .serviceUnavailable)
        case .raw(let status, let contentType, let body):
            return Response(
                status: HTTPResponse.Status(code: status), headers: [.contentType: contentType],
                body: ResponseBody(byteBuffer: ByteBuffer(string: body))
            )
        }

        switch endpoint {
        case .chat: return chat(recorded, settings, context)
        case .transcription: return transcription(recorded, settings, prefix: "")
        case .translation: return transcription(recorded, settings, prefix: "translated: ")
        case .speech: return speech(recorded, settings)
        case .embeddings: return embeddings(recorded)
        case .models:
            let data = settings.models.map { ["id": $0, "object": "model", "owned_by": "fake"] }
            return Self.json(["object": "list", "data": data])
        }
    }

    /// Sleeps `duration` (nil: until the fake stops) unless the client leaves first.
    private func waitWhileConnected(_ duration: Duration?, _ context: FakeProviderContext) async throws {
        let deadline = duration.map { ContinuousClock.now + $0 }
        while deadline.map({ ContinuousClock.now < $0 }) ?? true {
            if state.withLock({ $0.stopped }) { return }
            guard context.connectionIsOpen() else {
                state.withLock { $0.counters.requestsAbandoned += 1 }
                throw ClientGone()
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    private func chat(_ request: RecordedRequest, _ settings: Settings, _ context: FakeProviderContext) -> Response {
        // Codable, not JSONSerialization: a benchmark's load generator, the platform and this fake
        // share the machine, and Foundation's object graphs took half of the fake's time.
        // WireFormats' parser and writer rather than Codable: Foundation's coders took most of
        // the fake's time per answer, on cores it shares with the platform it stands beside.
        let wire = ChatWire.Request(json: request.body)
        let messages = wire.messages ?? []
        let lastUser = messages.last { $0.role == "user" }?.content?.text ?? ""
        let toolResult = messages.last?.role == "tool" ? messages.last?.content?.text : nil
        let toolCall = toolResult == nil ? wire.tools?.first?.function?.name : nil
        let reply = toolResult.map { "echo: \($0)" } ?? settings.chatReply ?? "echo: \(lastUser)"
        let promptTokens = messages.reduce(0) { $0 + Self.wordCount($1.content?.text ?? "") }
        let completionTokens = Self.wordCount(reply)
        let usage = ChatWire.Usage(
            promptTokens: promptTokens, completionTokens: completionTokens, totalTokens: promptTokens + completionTokens
        )
        let model = wire.model ?? "unknown"

        if let toolCall, wire.stream != true {
            let call = ChatWire.ToolCall(id: "call_fake_1", function: .init(name: toolCall, arguments: #"{"city":"Paris"}"#))
            return Self.json(ChatWire.Completion(
                model: model, choices: [.init(message: .init(role: "assistant", content: nil, toolCalls: [call]), finishReason: "tool_calls")], usage: usage
            ))
        }
        guard wire.stream == true else {
            return Self.jsonResponse(ChatWire.completionJSON(model: model, reply: reply, usage: usage), status: 200)
        }

        var events: [ChatWire.Chunk] = []
        for (index, piece) in Self.split(reply, into: settings.streaming.chunks).enumerated() {
            events.append(ChatWire.Chunk(model: model, choices: [.init(delta: .init(role: index == 0 ? "assistant" : nil, content: piece))]))
        }
        events.append(ChatWire.Chunk(model: model, choices: [.init(delta: .init(), finishReason: "stop")]))
        if wire.streamOptions?.includeUsage == true {
            events.append(ChatWire.Chunk(model: model, choices: [], usage: usage))
        }
        let streaming = settings.streaming
        let newline = streaming.crlf ? "\r\n" : "\n"
        let encodedEvents = events.map { event -> String in
            "data: " + String(decoding: event.json, as: UTF8.self) + newline + newline
        } + ["data: [DONE]" + newline + newline]

        state.withLock { $0.counters.streamsStarted += 1 }
        let body = ResponseBody { [self] writer in
            do {
                for (index, text) in encodedEvents.enumerated() {
                    if index > 0, streaming.interval > .zero { try await waitWhileStreaming(streaming.interval, context) }
                    guard context.connectionIsOpen() else { throw ClientGone() }
                    var event = streaming.comments ? ": keep-alive" + newline + text : text
                    if streaming.fragmented {
                        let cut = event.utf8.count / 2
                        let bytes = Array(event.utf8)
                        try await writer.write(ByteBuffer(bytes: bytes[..<cut]))
                        try await Task.sleep(for: .milliseconds(5))
                        event = String(decoding: bytes[cut...], as: UTF8.self)
                    }
                    try await writer.write(ByteBuffer(string: event))
                }
                try await writer.finish(nil)
                state.withLock { $0.counters.streamsCompleted += 1 }
            } catch {
                state.withLock { $0.counters.streamsAbandoned += 1 }
                throw error
            }
        }
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: body)
    }

    private func waitWhileStreaming(_ duration: Duration, _ context: FakeProviderContext) async throws {
        let deadline = ContinuousClock.now + duration
        while ContinuousClock.now < deadline {
            guard context.connectionIsOpen(), !state.withLock({ $0.stopped }) else { throw ClientGone() }
            try await Task.sleep(for: min(.milliseconds(10), deadline - ContinuousClock.now))
        }
    }

    private func transcription(_ request: RecordedRequest, _ settings: Settings, prefix: String) -> Response {
        guard let form = request.form, form.files["file"] != nil, form.fields["model"] != nil else {
            return Self.error(status: 400, message: "file and model are required", code: "invalid_request")
        }
        let text = prefix + settings.transcriptionText
        switch form.fields["response_format"] {
        case "text":
            return Response(status: .ok, headers: [.contentType: "text/plain"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
        case "srt":
            return Response(status: .ok, headers: [.contentType: "text/plain"], body: ResponseBody(byteBuffer: ByteBuffer(string: "1\n00:00:00,000 --> 00:00:01,000\n\(text)\n\n")))
        case "vtt":
            return Response(status: .ok, headers: [.contentType: "text/vtt"], body: ResponseBody(byteBuffer: ByteBuffer(string: "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n\(text)\n\n")))
        case "verbose_json":
            return Self.json(["task": prefix.isEmpty ? "transcribe" : "translate", "language": form.fields["language"] ?? "english", "duration": 1.0, "text": text, "segments": [] as [Any]])
        default:
            return Self.json(["text": text])
        }
    }

    private func embeddings(_ request: RecordedRequest) -> Response {
        let json = request.json ?? [:]
        guard let model = json["model"] as? String else {
            return Self.error(status: 400, message: "model is required", code: "invalid_request")
        }
        let inputs: [String]
        switch json["input"] {
        case let text as String: inputs = [text]
        case let items as [Any]: inputs = items.map { item in (item as? String) ?? "\(item)" }
        default: return Self.error(status: 400, message: "input is required", code: "invalid_request")
        }
        let base64 = (json["encoding_format"] as? String) == "base64"
        let data: [[String: Any]] = inputs.enumerated().map { index, text in
            let vector = Self.embedding(of: text)
            let encoded: Any = base64
                ? Data(vector.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }).base64EncodedString()
                : vector.map(Double.init)
            return ["object": "embedding", "index": index, "embedding": encoded]
        }
        let tokens = inputs.reduce(0) { $0 + max(1, Self.wordCount($1)) }
        return Self.json(["object": "list", "model": model, "data": data, "usage": ["prompt_tokens": tokens, "total_tokens": tokens]])
    }

    /// Eight numbers in [0, 1) from the text's bytes: equal texts, equal vectors.
    public static func embedding(of text: String) -> [Float] {
        (0..<8).map { dimension in
            let sum = text.utf8.enumerated().reduce(UInt32(dimension) &* 2_654_435_761) { $0 &* 31 &+ UInt32($1.element) &+ UInt32($1.offset) }
            return Float(sum % 1000) / 1000
        }
    }

    private func speech(_ request: RecordedRequest, _ settings: Settings) -> Response {
        let json = request.json ?? [:]
        // A built-in voice by name, or a custom one as {"id": ...}, as OpenAI's API takes them.
        let voice = json["voice"] as? String ?? (json["voice"] as? [String: Any])?["id"] as? String
        guard let input = json["input"] as? String, json["model"] is String, voice != nil else {
            return Self.error(status: 400, message: "model, input and voice are required", code: "invalid_request")
        }
        let format = (json["response_format"] as? String) ?? "mp3"
        let (magic, contentType): ([UInt8], String) =
            switch format {
            case "mp3": (Array("ID3".utf8) + [4, 0, 0, 0, 0, 0, 0, 0xFF, 0xFB], "audio/mpeg")
            case "opus": (Array("OggS".utf8), "audio/ogg")
            case "aac": ([0xFF, 0xF1], "audio/aac")
            case "flac": (Array("fLaC".utf8), "audio/flac")
            case "wav": (Array("RIFF".utf8) + [0, 0, 0, 0] + Array("WAVE".utf8), "audio/wav")
            case "pcm": ([0, 0], "audio/pcm")
            default: ([], "")
            }
        guard !contentType.isEmpty else {
            return Self.error(status: 400, message: "unsupported response_format", code: "invalid_request")
        }
        let audio = magic + Array(input.utf8) + [UInt8](repeating: 0x55, count: 256)
        var headers = HTTPFields()
        headers[.contentType] = settings.speechDeclaresContentType ? contentType : "application/octet-stream"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: audio)))
    }

    // MARK: - Helpers


    private static func wordCount(_ text: String) -> Int {
        text.split(whereSeparator: { $0.isWhitespace }).count
    }

    private static func split(_ text: String, into count: Int) -> [String] {
        let characters = Array(text)
        let pieces = max(1, min(count, characters.count))
        return (0..<pieces).map { index in
            String(characters[(characters.count * index / pieces)..<(characters.count * (index + 1) / pieces)])
        }
    }

    private static func json(_ value: some Encodable) -> Response {
        jsonResponse((try? ChatWire.encoder.encode(value)) ?? Data("{}".utf8), status: 200)
    }

    private static func json(_ object: [String: Any], status: Int = 200) -> Response {
        jsonResponse((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8), status: status)
    }

    private static func jsonResponse(_ data: some Sequence<UInt8>, status: Int) -> Response {
        Response(
            status: HTTPResponse.Status(code: status), headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    private static func error(status: Int, message: String, code: String) -> Response {
        json(["error": ["message": message, "type": status == 429 ? "requests" : "invalid_request_error", "code": code]], status: status)
    }

    /// Enough of RFC 7578 for well-formed test bodies.
    static func parseMultipart(_ body: [UInt8], contentType: String) -> Form? {
        guard let boundaryParameter = contentType.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespaces) })
            .first(where: { $0.lowercased().hasPrefix("boundary=") })
        else { return nil }
        let boundary = boundaryParameter.dropFirst("boundary=".count).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        let delimiter = Array("--\(boundary)".utf8)
        var form = Form()
        var position = 0
        var starts: [Int] = []
        while let found = find(delimiter, in: body, from: position) {
            starts.append(found)
            position = found + delimiter.count
        }
        for (start, end) in zip(starts, starts.dropFirst()) {
            var partStart = start + delimiter.count
            if body[partStart..<min(partStart + 2, body.count)].elementsEqual([13, 10]) { partStart += 2 }
            var partEnd = end
            if partEnd >= 2, body[(partEnd - 2)..<partEnd].elementsEqual([13, 10]) { partEnd -= 2 }
            guard partStart <= partEnd, let headerEnd = find([13, 10, 13, 10], in: Array(body[partStart..<partEnd]), from: 0) else {
                continue
            }
            let headerText = String(decoding: body[partStart..<(partStart + headerEnd)], as: UTF8.self)
            let content = Array(body[(partStart + headerEnd + 4)..<partEnd])
            var name: String?
            var filename: String?
            var partType: String?
            for line in headerText.components(separatedBy: "\r\n") {
                let lower = line.lowercased()
                if lower.hasPrefix("content-disposition:") {
                    name = parameter("name", in: line)
                    filename = parameter("filename", in: line)
                } else if lower.hasPrefix("content-type:") {
                    partType = line.dropFirst("content-type:".count).trimmingCharacters(in: .whitespaces)
                }
            }
            guard let name else { continue }
            if filename != nil || partType != nil {
                form.files[name] = UploadedFile(filename: filename, contentType: partType, data: content)
            } else {
                form.fields[name] = String(decoding: content, as: UTF8.self)
            }
        }
        return form
    }

    private static func parameter(_ name: String, in header: String) -> String? {
        for piece in header.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            let prefix = name + "=\""
            if piece.hasPrefix(prefix), piece.hasSuffix("\"") {
                return String(piece.dropFirst(prefix.count).dropLast())
            }
        }
        return nil
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count, start <= haystack.count - needle.count else { return nil }
        var index = start
        while index <= haystack.count - needle.count {
            if haystack[index] == needle[0], haystack[index..<(index + needle.count)].elementsEqual(needle) { return index }
            index += 1
        }
        return nil
    }
}

/// The chat completion bodies the fake reads and writes (OpenAI's wire format).
enum ChatWire {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return encoder
    }()

    struct Request: Decodable {
        var model: String?
        var messages: [Message]?
        var stream: Bool?
        var streamOptions: StreamOptions?
        var tools: [Tool]?

        enum CodingKeys: String, CodingKey {
            case model, messages, stream, tools
            case streamOptions = "stream_options"
        }

        /// The fields the fake reads; what is missing or of another type stays nil.
        init(json: [UInt8]) {
            guard let object = (try? JSONParser.parse(json))?.objectValue else { return }
            model = object["model"]?.stringValue
            if case .bool(let value)? = object["stream"] { stream = value }
            if case .bool(let value)? = object["stream_options"]?.objectValue?["include_usage"] {
                streamOptions = StreamOptions(includeUsage: value)
            }
            messages = object["messages"]?.arrayValue?.map { item in
                let message = item.objectValue
                let content: Content? = switch message?["content"] {
                case .string(let text)?: Content(text: text)
                case .array(let parts)?: Content(text: parts.compactMap { $0.objectValue?["text"]?.stringValue }.joined(separator: " "))
                default: nil
                }
                return Message(role: message?["role"]?.stringValue, content: content)
            }
            tools = object["tools"]?.arrayValue?.map { Tool(function: Tool.Function(name: $0.objectValue?["function"]?.objectValue?["name"]?.stringValue)) }
        }

        init() {}
    }

    /// A plain completion as `encoder` writes it (sorted keys, snake case).
    static func completionJSON(model: String, reply: String, usage: Usage) -> [UInt8] {
        JSONWriter.bytes(.object(JSONObject([
            ("choices", .array([.object(JSONObject([
                ("finish_reason", .string("stop")), ("index", .integer(0)),
                ("message", .object(JSONObject([("content", .string(reply)), ("role", .string("assistant"))]))),
            ]))])),
            ("created", .integer(0)), ("id", .string("chatcmpl-fake")), ("model", .string(model)), ("object", .string("chat.completion")),
            ("usage", .object(JSONObject([
                ("completion_tokens", .integer(usage.completionTokens)), ("prompt_tokens", .integer(usage.promptTokens)),
                ("total_tokens", .integer(usage.totalTokens)),
            ]))),
        ])))
    }

    struct Tool: Decodable {
        struct Function: Decodable {
            var name: String?
        }

        var function: Function?
    }

    struct ToolCall: Encodable {
        struct Function: Encodable {
            var name: String
            var arguments: String
        }

        var id: String
        var type = "function"
        var function: Function
    }

    struct StreamOptions: Decodable {
        var includeUsage: Bool?

        enum CodingKeys: String, CodingKey {
            case includeUsage = "include_usage"
        }
    }

    struct Message: Decodable {
        var role: String?
        var content: Content?
    }

    /// A message's content: text, or parts of which the text ones count.
    struct Content: Decodable {
        var text: String

        init(text: String) {
            self.text = text
        }

        private struct Part: Decodable {
            var text: String?
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let text = try? container.decode(String.self) {
                self.text = text
            } else {
                let parts = (try? container.decode([Part].self)) ?? []
                self.text = parts.compactMap(\.text).joined(separator: " ")
            }
        }
    }

    struct Usage: Encodable {
        var promptTokens: Int
        var completionTokens: Int
        var totalTokens: Int
    }

    struct Completion: Encodable {
        struct Choice: Encodable {
            var index = 0
            var message: Reply
            var finishReason = "stop"
        }

        var id = "chatcmpl-fake"
        var object = "chat.completion"
        var created = 0
        var model: String
        var choices: [Choice]
        var usage: Usage
    }

    struct Reply: Encodable {
        var role: String?
        var content: String?
        var toolCalls: [ToolCall]?
    }

    struct Chunk: Encodable {
        struct Choice: Encodable {
            var index = 0
            var delta: Reply
            /// `null` until the last chunk, as OpenAI sends it.
            var finishReason: String?

            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(index, forKey: .index)
                try container.encode(delta, forKey: .delta)
                try container.encode(finishReason, forKey: .finishReason)
            }

            enum CodingKeys: String, CodingKey {
                case index, delta, finishReason
            }
        }

        var id = "chatcmpl-fake"
        var object = "chat.completion.chunk"
        var created = 0
        var model: String
        var choices: [Choice]
        var usage: Usage?

        /// The chunk as `encoder` writes it (sorted keys, snake case, a null `finish_reason`).
        var json: [UInt8] {
            var members: [(String, JSONValue)] = [
                ("choices", .array(choices.map { choice in
                    var delta: [(String, JSONValue)] = []
                    if let content = choice.delta.content { delta.append(("content", .string(content))) }
                    if let role = choice.delta.role { delta.append(("role", .string(role))) }
                    return .object(JSONObject([
                        ("delta", .object(JSONObject(delta))), ("finish_reason", choice.finishReason.map(JSONValue.string) ?? .null),
                        ("index", .integer(choice.index)),
                    ]))
                })),
                ("created", .integer(created)), ("id", .string(id)), ("model", .string(model)), ("object", .string(object)),
            ]
            if let usage {
                members.append(("usage", .object(JSONObject([
                    ("completion_tokens", .integer(usage.completionTokens)), ("prompt_tokens", .integer(usage.promptTokens)),
                    ("total_tokens", .integer(usage.totalTokens)),
                ]))))
            }
            return JSONWriter.bytes(.object(JSONObject(members)))
        }
    }
}

/// Hummingbird's basic context plus a look at the connection, so a waiting handler notices a
/// client that went away.
struct FakeProviderContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let connectionIsOpen: @Sendable () -> Bool

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        let channel = source.channel
        connectionIsOpen = { channel.isActive }
    }
}

/// Hummingbird lets a client half-close its side and go on waiting; a client of this fake never
/// does that, so the end of its input means it left. Closing the connection then lets a handler
/// that is waiting (hang, delay, stream interval) notice through `isActive`.
private final class CloseWhenClientLeaves: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = Never

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            context.close(promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }
}
