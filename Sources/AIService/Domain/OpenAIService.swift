import AIProviders
import Foundation
import NIOCore
import Platform
import WireFormats

/// A provider's answer to an OpenAI-compatible call, and the caller's rate limit after it.
public struct OpenAIAnswer: Sendable {
    public var body: ByteBuffer
    public var contentType: String
    public var rateLimit: RateLimitState?
}

/// An uploaded audio file and the form's other fields, for transcriptions and translations.
public struct OpenAIAudioInput: Sendable {
    public var audio: ByteBuffer
    public var filename: String
    public var fields: [(name: String, value: String)]
    public var translate: Bool

    public init(audio: ByteBuffer, filename: String, fields: [(name: String, value: String)], translate: Bool) {
        self.audio = audio
        self.filename = filename
        self.fields = fields
        self.translate = translate
    }
}

/// The OpenAI wire API over the providers, through the same pipeline as `/ai/invoke` (rate
/// limit, quota, usage record, prices). Bodies pass through: the platform resolves `model`,
/// applies a chat model, asks streams for usage, and leaves every other field as the client
/// wrote it.
public struct OpenAIService: Sendable {
    let catalog: OpenAIModelCatalog
    let transcoder: (any AudioTranscoding)?
    let pipeline: InvocationPipeline

    init(providers: AIProviderDirectory, chatModels: any ChatModelRepository, transcoder: (any AudioTranscoding)?, pipeline: InvocationPipeline, listedSince: Date = Date()) {
        catalog = OpenAIModelCatalog(providers: providers, chatModels: chatModels, listedSince: listedSince)
        self.transcoder = transcoder
        self.pipeline = pipeline
    }

    static let transcriptionFormats = ["json", "text", "srt", "vtt", "verbose_json"]
    static let maxEmbeddingInputs = 2048

    // MARK: chat completions

    public func complete(_ body: [UInt8], allowed: [String], caller: Caller) async throws -> OpenAIAnswer {
        let (provider, prepared, target) = try await prepareChat(body, allowed: allowed, caller: caller, stream: false)
        let admission = try await pipeline.admit(target, caller: caller)
        admission.recordInput(GenAIContent.messages(openAI: prepared.body["messages"]))
        do {
            let answer = try await admission.calling {
                try await provider.passThrough(
                    "chat/completions", json: JSONWriter.bytes(.object(prepared.body)), model: target.model, maxAnswerBytes: 10 << 20
                )
            }
            let parsed = try Self.readable(answer, listing: "choices", provider: target.provider)
            admission.recordOutput(GenAIContent.answer(openAI: parsed))
            let (consumed, note) = Self.consumption(ofChatAnswer: parsed, promptCharacters: prepared.promptCharacters)
            await pipeline.finish(admission, consumed: consumed, error: nil, note: note)
            return OpenAIAnswer(body: answer.body, contentType: answer.contentType ?? "application/json", rateLimit: admission.rateLimit)
        } catch {
            await pipeline.finish(admission, failedWith: error)
            throw error
        }
    }

    /// Admits the call and opens the provider's stream; relay it with `OpenAIChatStream.relay`.
    public func openStream(_ body: [UInt8], allowed: [String], caller: Caller) async throws -> OpenAIChatStream {
        var (provider, prepared, target) = try await prepareChat(body, allowed: allowed, caller: caller, stream: true)
        target.streamed = true
        let admission = try await pipeline.admit(target, caller: caller)
        admission.recordInput(GenAIContent.messages(openAI: prepared.body["messages"]))
        let finisher = StreamFinisher(admission: admission, pipeline: pipeline, promptCharacters: prepared.promptCharacters)
        do {
            let events = try await admission.calling {
                try await provider.passThroughStream(json: JSONWriter.bytes(.object(prepared.body)), model: target.model)
            }
            return OpenAIChatStream(events: events, finisher: finisher, forwardsUsage: prepared.clientWantsUsage, rateLimit: admission.rateLimit)
        } catch {
            await finisher.finish(usage: nil, relayedCharacters: 0, error: error, cancelled: error is CancellationError || Task.isCancelled)
            throw error
        }
    }

    /// The body parsed, its model resolved and a chat model applied; a refusal here is recorded.
    private func prepareChat(
        _ body: [UInt8], allowed: [String], caller: Caller, stream: Bool
    ) async throws -> (any PassThroughProvider, PreparedChat, InvocationTarget) {
        try await recorded(.chat, caller: caller) { (target: inout InvocationTarget) async throws -> (any PassThroughProvider, PreparedChat) in
            let object = try OpenAIBody.object(body)
            let (provider, resolved) = try await resolve(object, caller: caller, allowed: allowed, chatModels: true, target: &target)
            let prepared = try OpenAIBody.prepareChat(object, model: resolved.model, chatModel: resolved.chatModel, stream: stream)
            target.expected = OpenAIBody.expectedChat(prepared.body, promptCharacters: prepared.promptCharacters)
            return (provider, prepared)
        }
    }

    /// A provider's answer as JSON, when it is the object asked for (with its `key` list): a 200
    /// cut off or of another shape is the provider's failure, as on the signed routes, not an
    /// answer to hand on that the client could not read.
    static func readable(_ answer: ProviderAnswer, listing key: String, provider: String) throws(DomainError) -> JSONValue {
        guard let parsed = try? JSONParser.parse(answer.body.readableBytesView), parsed.objectValue?[key]?.arrayValue != nil else {
            throw ProviderFailures.unreadable(provider: provider)
        }
        return parsed
    }

    static func consumption(ofChatAnswer answer: JSONValue, promptCharacters: Int) -> (Consumption, note: String?) {
        if let usage = OpenAIBody.usage(answer.objectValue?["usage"]) { return (usage, nil) }
        let completion = (answer.objectValue?["choices"]?.arrayValue ?? []).reduce(0) {
            $0 + OpenAIBody.textCharacters(ofContent: $1.objectValue?["message"]?.objectValue?["content"])
        }
        return (OpenAIBody.estimate(promptCharacters: promptCharacters, completionCharacters: completion), "usage estimated: the provider reported none")
    }

    // MARK: embeddings and speech

    public func embed(_ body: [UInt8], allowed: [String], caller: Caller) async throws -> OpenAIAnswer {
        let (provider, object, checked) = try await recorded(.embeddings, caller: caller) { (target: inout InvocationTarget) async throws -> (any PassThroughProvider, JSONObject) in
            var object = try OpenAIBody.object(body)
            try Self.checkEmbeddingInput(object["input"])
            let (provider, resolved) = try await resolve(object, caller: caller, allowed: allowed, chatModels: false, target: &target)
            object["model"] = .string(resolved.model)
            return (provider, object)
        }
        // Token ids count as the tokens they are (four characters each, as the estimate reckons).
        let promptCharacters: Int = {
            switch object["input"] {
            case .string(let text): text.count
            case .array(let items):
                items.reduce(0) { sum, item in
                    switch item {
                    case .string(let text): sum + text.count
                    case .number: sum + 4
                    case .array(let tokens): sum + 4 * tokens.count
                    default: sum
                    }
                }
            default: 0
            }
        }()
        var target = checked
        target.expected = OpenAIBody.estimate(promptCharacters: promptCharacters, completionCharacters: 0)
        return try await run(target, caller: caller) {
            let answer = try await provider.passThrough("embeddings", json: JSONWriter.bytes(.object(object)), model: target.model, maxAnswerBytes: 64 << 20)
            let usage = OpenAIBody.usage(try Self.readable(answer, listing: "data", provider: target.provider).objectValue?["usage"])
            return (answer, usage ?? OpenAIBody.estimate(promptCharacters: promptCharacters, completionCharacters: 0))
        }
    }

    static func checkEmbeddingInput(_ input: JSONValue?) throws(DomainError) {
        switch input {
        case nil: throw OpenAIBody.invalid("input", "you must provide 'input'")
        case .string(let text) where !text.isEmpty: return
        case .array(let items) where !items.isEmpty && items.count <= maxEmbeddingInputs:
            // Strings, one token array, or token arrays, as OpenAI accepts; one kind per request.
            func isToken(_ value: JSONValue) -> Bool {
                guard case .number(let text) = value else { return false }
                return UInt32(text) != nil
            }
            switch items[0] {
            case .string:
                if items.allSatisfy({ if case .string(let text) = $0 { !text.isEmpty } else { false } }) { return }
            case .number:
                if items.allSatisfy(isToken) { return }
            case .array:
                if items.allSatisfy({ if case .array(let tokens) = $0 { !tokens.isEmpty && tokens.allSatisfy(isToken) } else { false } }) { return }
            default:
                break
            }
        default: break
        }
        throw OpenAIBody.invalid(
            "input", "'input' must be a non-empty string, or an array of 1 to \(maxEmbeddingInputs) non-empty strings, token ids or token id arrays (one kind)"
        )
    }

    public func speak(_ body: [UInt8], allowed: [String], caller: Caller) async throws -> OpenAIAnswer {
        let (provider, object, checked) = try await recorded(.tts, caller: caller) { (target: inout InvocationTarget) async throws -> (any PassThroughProvider, JSONObject) in
            var object = try OpenAIBody.object(body)
            let input = try OpenAIBody.requiredString(object, "input")
            if input.unicodeScalars.count > SpeechService.maxSpeechText {
                throw OpenAIBody.invalid("input", "'input' must be at most \(SpeechService.maxSpeechText) characters long")
            }
            if let format = try OpenAIBody.optionalString(object, "response_format"), !SpeechService.speechFormats.contains(format) {
                throw OpenAIBody.invalid("response_format", "'response_format' must be one of \(SpeechService.speechFormats.joined(separator: ", "))")
            }
            if let speed = object["speed"], speed != .null {
                guard let value = speed.doubleValue, (0.25...4).contains(value) else {
                    throw OpenAIBody.invalid("speed", "'speed' must be a number from 0.25 to 4.0")
                }
            }
            let (provider, resolved) = try await resolve(object, caller: caller, allowed: allowed, chatModels: false, target: &target)
            object["model"] = .string(resolved.model)
            // A built-in voice by name, or a custom one as {"id": ...}.
            switch object["voice"] {
            case nil, .null?: object["voice"] = .string(resolved.provider.defaults.voice)
            case .string?: break
            case .object(let voice)? where voice["id"]?.stringValue?.isEmpty == false: break
            case .some: throw OpenAIBody.invalid("voice", "'voice' must be a voice's name or an object with its 'id'")
            }
            return (provider, object)
        }
        let characters = object["input"]?.stringValue?.count ?? 0
        let format = object["response_format"]?.stringValue ?? "mp3"
        var target = checked
        target.expected = Consumption(characters: characters)
        return try await run(target, caller: caller) {
            let answer = try await provider.passThrough("audio/speech", json: JSONWriter.bytes(.object(object)), model: target.model, maxAnswerBytes: 64 << 20)
            // Audio (or its events, with `stream_format: sse`), not nothing and not a page, a text
            // or a JSON body sent with a 200.
            let declared = answer.contentType?.lowercased() ?? ""
            let notAudio = ["text/html", "text/plain", "application/json"].contains { declared.hasPrefix($0) }
            if answer.body.readableBytes == 0 || notAudio {
                throw ProviderFailures.unreadable(provider: target.provider)
            }
            return (ProviderAnswer(body: answer.body, contentType: answer.contentType ?? Self.contentType(ofSpeech: format)), Consumption(characters: characters))
        }
    }

    static func contentType(ofSpeech format: String) -> String {
        switch format {
        case "opus": "audio/ogg"
        case "aac": "audio/aac"
        case "flac": "audio/flac"
        case "wav": "audio/wav"
        case "pcm": "audio/pcm"
        default: "audio/mpeg"
        }
    }

    // MARK: transcriptions and translations

    public func transcribe(_ input: OpenAIAudioInput, allowed: [String], caller: Caller) async throws -> OpenAIAnswer {
        let fileExtension = (input.filename as NSString).pathExtension.lowercased()
        let (provider, transcoder, target) = try await recorded(.stt, caller: caller) { (target: inout InvocationTarget) async throws -> (any PassThroughProvider, any AudioTranscoding) in
            let model = try Self.checkAudioForm(input, fileExtension: fileExtension)
            let resolved = try await catalog.resolve(model, caller: caller, allowed: allowed, chatModelsAllowed: false)
            (target.provider, target.model) = (resolved.provider.name, resolved.model)
            guard let provider = resolved.provider as? any PassThroughProvider else { throw Self.noPassThrough(resolved.provider.name) }
            guard let transcoder = self.transcoder else { throw SpeechService.transcoderMissing }
            return (provider, transcoder)
        }
        let sent = SentToProvider()
        return try await run(target, caller: caller, sent: sent) {
            let audio = try await transcoder.transcodeForTranscription(input.audio, fileExtension: fileExtension)
            sent.record(Consumption(audioSeconds: audio.durationSeconds))
            var parts = [ProviderFormPart(name: "file", value: audio.mp3, filename: "audio.mp3", contentType: "audio/mpeg")]
            for field in input.fields {
                let value = field.name == "model" ? target.model : field.value
                parts.append(ProviderFormPart(name: field.name, value: ByteBuffer(string: value)))
            }
            let answer = try await provider.passThrough(input.translate ? "audio/translations" : "audio/transcriptions", form: parts, model: target.model)
            return (answer, Consumption(audioSeconds: audio.durationSeconds))
        }
    }

    /// Checks the upload and the fields the platform reads; answers the requested model.
    static func checkAudioForm(_ input: OpenAIAudioInput, fileExtension: String) throws(DomainError) -> String {
        func field(_ name: String) -> String? { input.fields.last { $0.name == name }?.value }
        guard let model = field("model"), !model.isEmpty else { throw OpenAIBody.invalid("model", "you must provide 'model'") }
        if input.audio.readableBytes == 0 { throw OpenAIBody.invalid("file", "'file' must not be empty") }
        if input.audio.readableBytes > SpeechService.maxAudioBytes { throw OpenAIBody.invalid("file", "'file' must be at most 25 MiB") }
        guard SpeechService.audioExtensions.contains(fileExtension) else {
            throw DomainError(
                .invalidArgument,
                "Unrecognized file format \(fileExtension.quotedForMessage). Supported formats: \(SpeechService.audioExtensions.joined(separator: ", "))",
                violations: [FieldViolation(property: "file", constraints: ["file must be one of \(SpeechService.audioExtensions.joined(separator: ", "))"])],
                reason: ErrorReason.unsupportedAudioFormat.rawValue
            )
        }
        if let format = field("response_format"), !transcriptionFormats.contains(format) {
            throw OpenAIBody.invalid("response_format", "'response_format' must be one of \(transcriptionFormats.joined(separator: ", "))")
        }
        if let text = field("temperature") {
            guard let temperature = Double(text), (0...1).contains(temperature) else {
                throw OpenAIBody.invalid("temperature", "'temperature' must be a number from 0 to 1")
            }
        }
        return model
    }

    // MARK: models

    public func models(allowed: [String], caller: Caller) async throws -> [ModelListing] {
        try await catalog.list(caller: caller, allowed: allowed)
    }

    // MARK: shared steps

    static func noPassThrough(_ provider: String) -> DomainError {
        DomainError(.failedPrecondition, "the AI provider \(provider.quotedForMessage) does not serve the OpenAI-compatible API")
    }

    /// `model` of a JSON body resolved; `target` learns provider and model.
    private func resolve(
        _ object: JSONObject, caller: Caller, allowed: [String], chatModels: Bool, target: inout InvocationTarget
    ) async throws -> (any PassThroughProvider, ResolvedModel) {
        let name = try OpenAIBody.requiredString(object, "model")
        if name.utf8.count > 256 { throw OpenAIBody.invalid("model", "'model' must be at most 256 bytes long") }
        let resolved = try await catalog.resolve(name, caller: caller, allowed: allowed, chatModelsAllowed: chatModels)
        (target.provider, target.model, target.chatModelId) = (resolved.provider.name, resolved.model, resolved.chatModel?.id ?? "")
        guard let provider = resolved.provider as? any PassThroughProvider else { throw Self.noPassThrough(resolved.provider.name) }
        return (provider, resolved)
    }

    /// Runs the checks of a call; a refusal is recorded (with what was known of the target), then thrown.
    private func recorded<A, B>(
        _ kind: InvocationKind, caller: Caller, _ check: (inout InvocationTarget) async throws -> (A, B)
    ) async throws -> (A, B, InvocationTarget) {
        let started = ContinuousClock.now
        var target = InvocationTarget(kind: kind, provider: "", model: "", chatModelId: "")
        target.openAIWire = true
        do {
            let (first, second) = try await check(&target)
            return (first, second, target)
        } catch {
            await pipeline.recordRejected(target, caller: caller, error: error, started: started)
            throw error
        }
    }

    private func run(
        _ target: InvocationTarget, caller: Caller, sent: SentToProvider? = nil, _ call: () async throws -> (ProviderAnswer, Consumption)
    ) async throws -> OpenAIAnswer {
        var rateLimit: RateLimitState?
        let answer = try await pipeline.run(target, caller: caller, sent: sent, onAdmitted: { rateLimit = $0.rateLimit }, call)
        return OpenAIAnswer(body: answer.body, contentType: answer.contentType ?? "application/json", rateLimit: rateLimit)
    }
}
