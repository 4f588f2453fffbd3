import AIProviders
import NIOCore
import Platform
import TestSupport
import Testing

@Suite struct AudioEndpointTests {
    @Test func transcriptionSendsAMultipartForm() async throws {
        try await ProviderHarness.run { harness in
            harness.fake.setTranscriptionText("bonjour tout le monde")
            let audio: [UInt8] = (0..<5000).map { UInt8($0 % 251) }
            let text = try await harness.provider.transcribe(
                TranscriptionRequest(
                    audio: ByteBuffer(bytes: audio), filename: "voice \"note\".mp3", model: "whisper-1", prompt: "a greeting",
                    language: "fr", temperature: 0.2))
            #expect(text == "bonjour tout le monde")

            let sent = try #require(harness.fake.requests(to: .transcription).first)
            #expect(sent.path == "/v1/audio/transcriptions")
            #expect(sent.header("authorization") == "Bearer \(ProviderHarness.apiKey)")
            let form = try #require(sent.form)
            #expect(form.fields["model"] == "whisper-1")
            #expect(form.fields["prompt"] == "a greeting")
            #expect(form.fields["language"] == "fr")
            #expect(form.fields["temperature"] == "0.2")
            #expect(form.fields["response_format"] == "json")
            let file = try #require(form.files["file"])
            #expect(file.data == audio)
            #expect(file.contentType == "audio/mpeg")
            // A quote in the name cannot break the part's header.
            #expect(file.filename == "voice _note_.mp3")
        }
    }

    @Test func optionalTranscriptionFieldsAreLeftOut() async throws {
        try await ProviderHarness.run { harness in
            _ = try await harness.provider.transcribe(TranscriptionRequest(audio: ByteBuffer(bytes: [1, 2, 3]), filename: "a.mp3", model: "whisper-1"))
            let form = try #require(harness.fake.requests.first?.form)
            #expect(Set(form.fields.keys) == ["model", "response_format"])
        }
    }

    @Test(arguments: [("mp3", "audio/mpeg"), ("wav", "audio/wav"), ("opus", "audio/ogg"), ("flac", "audio/flac")])
    func speechReturnsAudio(format: String, contentType: String) async throws {
        try await ProviderHarness.run { harness in
            let speech = try await harness.provider.speak(SpeechRequest(text: "hello world", model: "tts-1", voice: "nova", format: format))
            #expect(speech.contentType == contentType)
            #expect(speech.audio.readableBytes > 256)
            #expect(speech.audio.getString(at: speech.audio.readerIndex, length: speech.audio.readableBytes)?.contains("hello world") == true)

            let json = try #require(harness.fake.requests(to: .speech).first?.json)
            #expect(json["model"] as? String == "tts-1")
            #expect(json["input"] as? String == "hello world")
            #expect(json["voice"] as? String == "nova")
            #expect(json["response_format"] as? String == format)
        }
    }

    @Test(arguments: [("mp3", "audio/mpeg"), ("opus", "audio/ogg"), ("aac", "audio/aac"), ("flac", "audio/flac"), ("wav", "audio/wav"), ("pcm", "audio/pcm")])
    func contentTypeFromFormatWhenUndeclared(format: String, contentType: String) async throws {
        try await ProviderHarness.run { harness in
            harness.fake.setSpeechDeclaresContentType(false)
            let speech = try await harness.provider.speak(SpeechRequest(text: "hi", model: "tts-1", voice: "alloy", format: format))
            #expect(speech.contentType == contentType)
        }
    }

    @Test func oversizedAnswersAreRefused() async throws {
        let fake = try await FakeProvider.start()
        let registry = ProviderRegistry(
            settings: ProviderSettings(providers: [ProviderConfiguration(name: "fake", baseURL: fake.baseURL)]), logger: .init(label: "test"),
            limits: ProviderLimits(maxJSONBytes: 64, maxAudioBytes: 100, maxStreamEventBytes: 64))
        let provider = try #require(registry.provider(named: "fake"))
        let speech = await domainError { _ = try await provider.speak(SpeechRequest(text: "hi", model: "tts-1", voice: "alloy", format: "mp3")) }
        #expect(speech?.kind == .upstreamFailure)
        #expect(speech?.message.contains("too large") == true)
        let chat = await domainError { _ = try await provider.complete(.hello()) }
        #expect(chat?.kind == .upstreamFailure)
        let stream = await domainError { for try await _ in try await provider.stream(.hello()) {} }
        #expect(stream?.kind == .upstreamFailure)
        try await registry.shutdown()
        await fake.stop()
    }
}
