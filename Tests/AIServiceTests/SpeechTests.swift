import AIProviders
import AIService
import AISaaSProtos
import Foundation
import GRPCCore
import Platform
import Testing
import TestSupport

@Suite("Speech")
struct SpeechTests {
    static func transcription(_ filename: String, bytes: Int = 1_000) -> Grpc_Ai_V1_CreateTranscriptionRequest {
        .with {
            $0.buffer = Data(repeating: 7, count: bytes)
            $0.filename = filename
            $0.prompt = "names: Zoë"
            $0.languageCode = "fr"
            $0.temperature = 1
            $0.samplingTemperature = 0.25
        }
    }

    @Test(arguments: TestDatabaseKind.enabled)
    func transcribesThroughTheTranscoderAndRecordsAudioSeconds(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider(defaults: ProviderModels(chat: "gpt-test", transcription: "whisper-x"))
        let transcoder = ScriptedTranscoder(durationSeconds: 90)
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([provider]), transcoder: transcoder, configure: {
            $0.prices = PriceTable(["openai/whisper-x": .init(perAudioMinute: 0.006)])
        }) { h in
            let answer = try await asUser("alice") { try await h.a.speech.createTranscription(Self.transcription("Memo.M4A")) }
            #expect(answer.text == "transcribed text")
            #expect(transcoder.calls.withLock { $0.map(\.fileExtension) } == ["m4a"])
            #expect(transcoder.calls.withLock { $0.map(\.bytes) } == [1_000])
            let sent = try #require(provider.snapshot.transcriptions.first)
            #expect(sent.model == "whisper-x" && sent.prompt == "names: Zoë" && sent.language == "fr" && sent.temperature == 0.25)
            #expect(String(buffer: sent.audio) == "mp3-of-1000")
            let record = try #require(try await h.a.usageReport("alice").records.first)
            #expect(record.kind == .stt && record.audioSeconds == 90 && record.status == 200)
            #expect(abs(record.cost - 0.009) < 1e-9)
        }
    }

    @Test(arguments: TestDatabaseKind.enabled)
    func refusesUnsupportedFormatsAndOversizedFiles(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider()
        let transcoder = ScriptedTranscoder()
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([provider]), transcoder: transcoder) { h in
            let format = await rpcError { try await asUser("alice") { try await h.a.speech.createTranscription(Self.transcription("notes.txt")) } }
            #expect(format?.code == .invalidArgument && format?.reason == "UnsupportedAudioFormat")
            #expect(format?.message.contains("flac, m4a, mp3, mp4, mpeg, mpga, ogg, wav, webm") == true)
            let noName = await rpcError { try await asUser("alice") { try await h.a.speech.createTranscription(.with { $0.buffer = Data([1]) }) } }
            #expect(noName?.reason == "UnsupportedAudioFormat")
            let big = await rpcError { try await asUser("alice") { try await h.a.speech.createTranscription(Self.transcription("a.wav", bytes: 25 * 1024 * 1024 + 1)) } }
            #expect(big?.code == .invalidArgument && big?.violatedProperties == ["file"])
            #expect(transcoder.calls.withLock { $0.isEmpty } && provider.snapshot.transcriptions.isEmpty)
        }
    }

    @Test(arguments: TestDatabaseKind.enabled)
    func withoutFFmpegTranscriptionIsUnavailable(kind: TestDatabaseKind) async throws {
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([ScriptedProvider()]), transcoder: nil) { h in
            let error = await rpcError { try await asUser("alice") { try await h.a.speech.createTranscription(Self.transcription("a.mp3")) } }
            #expect(error?.code == .unavailable && error?.message == "speech to text needs ffmpeg: install the ffmpeg package")
        }
    }

    @Test(arguments: TestDatabaseKind.enabled)
    func speaksWithDefaultsAndRecordsCharacters(kind: TestDatabaseKind) async throws {
        let provider = ScriptedProvider(defaults: ProviderModels(chat: "c", speech: "tts-x", voice: "nova"))
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([provider]), configure: {
            $0.prices = PriceTable(["openai/*": .init(perMillionCharacters: 15)])
        }) { h in
            let audio = try await asUser("alice") { try await h.a.speech.createSpeech(.with { $0.text = "Hello world" }) }
            #expect(audio.audio == Data("audio:mp3".utf8) && audio.contentType == "audio/mpeg")
            #expect(provider.snapshot.speeches.first == SpeechRequest(text: "Hello world", model: "tts-x", voice: "nova", format: "mp3"))
            _ = try await asUser("alice") { try await h.a.speech.createSpeech(.with { $0.text = "x"; $0.voice = "echo"; $0.format = "opus" }) }
            #expect(provider.snapshot.speeches.last == SpeechRequest(text: "x", model: "tts-x", voice: "echo", format: "opus"))
            let bad = await rpcError {
                try await asUser("alice") { try await h.a.speech.createSpeech(.with { $0.text = String(repeating: "a", count: 4_097); $0.format = "ogg" }) }
            }
            #expect(Set(bad?.violatedProperties ?? []) == ["text", "format"])
            let records = try await h.a.usageReport("alice").records
            // Newest first: the refused call is recorded too, with nothing consumed.
            #expect(records.map(\.status) == [422, 200, 200])
            #expect(records.map(\.characters) == [0, 1, 11] && records.allSatisfy { $0.kind == .tts })
            #expect(abs((records.last?.cost ?? 0) - 11 * 15 / 1_000_000) < 1e-12)
        }
    }
}
