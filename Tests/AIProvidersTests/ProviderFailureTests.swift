import AIProviders
import Platform
import TestSupport
import Testing

@Suite struct ProviderFailureTests {
    /// No message may carry the key or the provider's raw answer.
    private func expectClean(_ error: DomainError?) {
        guard let error else { return }
        #expect(!error.message.contains(ProviderHarness.apiKey))
        #expect(!"\(error)".contains(ProviderHarness.apiKey))
        #expect(!error.message.contains("Incorrect API key"))
        #expect(!error.message.contains("fake provider failed as told"))
    }

    @Test func wrongKeyIsRejectedCredentials() async throws {
        try await ProviderHarness.run { harness in
            harness.fake.requireAPIKey("sk-the-right-key")
            for call in Self.everyCall(harness.provider) {
                let error = await domainError(call)
                #expect(error?.kind == .upstreamFailure)
                #expect(error?.reason == "ProviderRejectedCredentials")
                #expect(error?.message.contains("refused the platform's API key") == true)
                expectClean(error)
            }
            #expect(harness.fake.requests.count == 4)
        }
    }

    @Test func forbiddenIsRejectedCredentials() async throws {
        try await ProviderHarness.run { harness in
            harness.fake.setBehavior(.fail(status: 403))
            let error = await domainError { _ = try await harness.provider.complete(.hello()) }
            #expect(error?.kind == .upstreamFailure)
            #expect(error?.reason == "ProviderRejectedCredentials")
            expectClean(error)
        }
    }

    @Test func rateLimitCarriesRetryAfter() async throws {
        try await ProviderHarness.run { harness in
            harness.fake.setBehavior(.rateLimit(retryAfterSeconds: 7))
            for call in Self.everyCall(harness.provider) {
                let error = await domainError(call)
                #expect(error?.kind == .resourceExhausted)
                #expect(error?.reason == "ProviderRateLimited")
                #expect(error?.retryAfterSeconds == 7)
                expectClean(error)
            }
        }
    }

    @Test func rateLimitWithoutRetryAfterStillTellsCallersToWait() async throws {
        try await ProviderHarness.run { harness in
            harness.fake.setBehavior(.fail(status: 429))
            let error = await domainError { _ = try await harness.provider.complete(.hello()) }
            #expect(error?.reason == "ProviderRateLimited")
            #expect(error?.retryAfterSeconds == 5)
        }
    }

    @Test(arguments: [500, 502, 503])
    func serverErrorIsUpstreamFailure(status: Int) async throws {
        try await ProviderHarness.run { harness in
            harness.fake.setBehavior(.fail(status: status))
            for call in Self.everyCall(harness.provider) {
                let error = await domainError(call)
                #expect(error?.kind == .upstreamFailure)
                #expect(error?.reason == nil)
                expectClean(error)
            }
        }
    }

    @Test(arguments: [400, 404, 422])
    func rejectedRequestNamesTheModel(status: Int) async throws {
        try await ProviderHarness.run { harness in
            harness.fake.setBehavior(.fail(status: status))
            let error = await domainError { _ = try await harness.provider.complete(.hello()) }
            #expect(error?.kind == .failedPrecondition)
            #expect(error?.reason == "ProviderRejectedRequest")
            #expect(error?.message.contains("fake-chat") == true)
            expectClean(error)
            let streamError = await domainError { _ = try await harness.provider.stream(.hello()) }
            #expect(streamError?.kind == .failedPrecondition)
        }
    }

    @Test func connectionRefusedIsUpstreamFailure() async throws {
        let closed = try await FakeProvider.start()
        let url = closed.baseURL
        await closed.stop()
        try await ProviderHarness.run(baseURL: url) { harness in
            for call in Self.everyCall(harness.provider) {
                let error = await domainError(call)
                #expect(error?.kind == .upstreamFailure)
                expectClean(error)
            }
        }
    }

    @Test func hangIsDeadlineExceeded() async throws {
        try await ProviderHarness.run(timeout: .milliseconds(500)) { harness in
            harness.fake.setBehavior(.hang)
            for call in Self.everyCall(harness.provider) {
                let started = ContinuousClock.now
                let error = await domainError(call)
                #expect(error?.kind == .deadlineExceeded)
                // It gave up rather than waiting for an answer that never comes.
                #expect(ContinuousClock.now - started < .seconds(20))
                expectClean(error)
            }
            // The client gave up by closing its connections, which the fake notices.
            #expect(await harness.fake.waitUntil(timeout: .seconds(3)) { $0.requestsAbandoned == 4 })
        }
    }

    @Test func unreadableAnswerIsUpstreamFailure() async throws {
        try await ProviderHarness.run { harness in
            harness.fake.setBehavior(.fail(status: 200))
            // A 200 whose body is an error object, not a completion.
            let error = await domainError { _ = try await harness.provider.complete(.hello()) }
            #expect(error?.kind == .upstreamFailure)
            let speech = await domainError {
                _ = try await harness.provider.speak(SpeechRequest(text: "hi", model: "tts-1", voice: "alloy", format: "mp3"))
            }
            #expect(speech?.kind == .upstreamFailure)
        }
    }

    @Test func logsCarryNeitherKeyNorAnswer() async throws {
        let logs = LogRecorder()
        // Answers within a generous timeout (a loaded machine took longer than half a second for
        // the 401s), then a provider that never answers, with a short one.
        try await ProviderHarness.run(timeout: .seconds(20), logger: logs.logger()) { harness in
            harness.fake.requireAPIKey("sk-the-right-key")
            for call in Self.everyCall(harness.provider) { _ = await domainError(call) }
            harness.fake.requireAPIKey(nil)
            for behavior in [FakeProvider.Behavior.fail(status: 404), .fail(status: 500), .rateLimit(retryAfterSeconds: 1)] {
                harness.fake.setBehavior(behavior)
                for call in Self.everyCall(harness.provider) { _ = await domainError(call) }
            }
        }
        try await ProviderHarness.run(timeout: .milliseconds(500), logger: logs.logger()) { harness in
            harness.fake.setBehavior(.hang)
            for call in Self.everyCall(harness.provider) { _ = await domainError(call) }
        }
        #expect(logs.all.contains { $0.contains("401") && $0.contains("invalid_api_key") })
        for line in logs.all {
            #expect(!line.contains(ProviderHarness.apiKey), "\(line)")
            #expect(!line.contains("Incorrect API key"), "\(line)")
            #expect(!line.contains("failed as told"), "\(line)")
        }
    }

    static func everyCall(_ provider: any AIProvider) -> [@Sendable () async throws -> Void] {
        [
            { _ = try await provider.complete(.hello()) },
            { for try await _ in try await provider.stream(.hello()) {} },
            { _ = try await provider.transcribe(TranscriptionRequest(audio: .init(bytes: [1, 2, 3]), filename: "a.mp3", model: "whisper-1")) },
            { _ = try await provider.speak(SpeechRequest(text: "hi", model: "tts-1", voice: "alloy", format: "mp3")) },
        ]
    }
}
