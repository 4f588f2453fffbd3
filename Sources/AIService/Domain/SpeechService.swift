import AIProviders
import Foundation
import NIOCore
import Platform
import WireFormats

public struct TranscriptionInput: Sendable {
    public var audio: ByteBuffer
    public var filename: String
    public var prompt: String?
    public var language: String?
    public var temperature: Double?

    public init(audio: ByteBuffer, filename: String, prompt: String? = nil, language: String? = nil, temperature: Double? = nil) {
        self.audio = audio
        self.filename = filename
        self.prompt = prompt
        self.language = language
        self.temperature = temperature
    }
}

public struct SpeechInput: Sendable {
    public var text: String
    public var voice: String?
    public var format: String?

    public init(text: String, voice: String? = nil, format: String? = nil) {
        self.text = text
        self.voice = voice
        self.format = format
    }
}

/// Speech to text and text to speech with the default provider, through the invocation pipeline.
public struct SpeechService: Sendable {
    let providers: AIProviderDirectory
    let transcoder: (any AudioTranscoding)?
    let pipeline: InvocationPipeline

    static let audioExtensions = AudioFormats.transcriptionUploads
    static let maxAudioBytes = 25 * 1024 * 1024
    static let speechFormats = AudioFormats.speechOutputs
    static let maxSpeechText = 4_096

    static let transcoderMissing = DomainError(.unavailable, "speech to text needs ffmpeg: install the ffmpeg package")

    public func transcribe(_ input: TranscriptionInput, caller: Caller) async throws -> String {
        let started = ContinuousClock.now
        var target = defaultTarget(.stt) { $0.transcription }
        let fileExtension = (input.filename as NSString).pathExtension.lowercased()
        let transcoder: any AudioTranscoding, provider: any AIProvider
        do {
            (transcoder, provider) = try checkTranscription(input, fileExtension: fileExtension)
        } catch {
            await pipeline.recordRejected(target, caller: caller, error: error, started: started)
            throw error
        }
        let model = provider.defaults.transcription
        target = InvocationTarget(kind: .stt, provider: provider.name, model: model, chatModelId: "")
        let sent = SentToProvider()
        return try await pipeline.run(target, caller: caller, sent: sent) {
            let audio = try await transcoder.transcodeForTranscription(input.audio, fileExtension: fileExtension)
            sent.record(Consumption(audioSeconds: audio.durationSeconds))
            let text = try await provider.transcribe(TranscriptionRequest(
                audio: audio.mp3, filename: "audio.mp3", model: model,
                prompt: input.prompt, language: input.language, temperature: input.temperature
            ))
            return (text, Consumption(audioSeconds: audio.durationSeconds))
        }
    }

    private func checkTranscription(_ input: TranscriptionInput, fileExtension: String) throws(DomainError) -> (any AudioTranscoding, any AIProvider) {
        guard Self.audioExtensions.contains(fileExtension) else {
            throw DomainError(
                .invalidArgument,
                "unsupported audio format \(fileExtension.quotedForMessage): use one of \(Self.audioExtensions.joined(separator: ", "))",
                violations: [FieldViolation(property: "file", constraints: ["file must be one of \(Self.audioExtensions.joined(separator: ", "))"])],
                reason: ErrorReason.unsupportedAudioFormat.rawValue
            )
        }
        var violations = Violations()
        if input.audio.readableBytes == 0 { violations.add("file", "file must not be empty") }
        if input.audio.readableBytes > Self.maxAudioBytes { violations.add("file", "file must be at most 25 MiB") }
        if let temperature = input.temperature, !(0...1).contains(temperature) {
            violations.add("temperature", "temperature must be 0 to 1")
        }
        try violations.throwIfAny()
        if providers.isEmpty { throw AIProviderDirectory.notConfigured }
        guard let transcoder else { throw Self.transcoderMissing }
        return (transcoder, try providers.provider(named: nil))
    }

    /// What a refused call is recorded against: the default provider and its model, if any.
    private func defaultTarget(_ kind: InvocationKind, _ model: (ProviderModels) -> String) -> InvocationTarget {
        let provider = providers.effectiveDefaultName.flatMap { providers.providers[$0] }
        return InvocationTarget(kind: kind, provider: provider?.name ?? "", model: provider.map { model($0.defaults) } ?? "", chatModelId: "")
    }

    public func speak(_ input: SpeechInput, caller: Caller) async throws -> SpeechAudio {
        let started = ContinuousClock.now
        let request: SpeechRequest, provider: any AIProvider
        do {
            (request, provider) = try checkSpeech(input)
        } catch {
            await pipeline.recordRejected(defaultTarget(.tts) { $0.speech }, caller: caller, error: error, started: started)
            throw error
        }
        var target = InvocationTarget(kind: .tts, provider: provider.name, model: request.model, chatModelId: "")
        target.expected = Consumption(characters: input.text.count)
        return try await pipeline.run(target, caller: caller) {
            let audio = try await provider.speak(request)
            return (audio, Consumption(characters: input.text.count))
        }
    }

    private func checkSpeech(_ input: SpeechInput) throws(DomainError) -> (SpeechRequest, any AIProvider) {
        var violations = Violations()
        violations.checkLength("text", input.text, 1...Self.maxSpeechText)
        if let format = input.format, !Self.speechFormats.contains(format) {
            violations.add("format", "format must be one of \(Self.speechFormats.joined(separator: ", "))")
        }
        if let voice = input.voice, voice.trimmingCharacters(in: .whitespaces).isEmpty {
            violations.add("voice", "voice must not be empty")
        }
        try violations.throwIfAny()
        let provider = try providers.provider(named: nil)
        let request = SpeechRequest(
            text: input.text, model: provider.defaults.speech,
            voice: input.voice ?? provider.defaults.voice, format: input.format ?? "mp3"
        )
        return (request, provider)
    }
}
