import AIProviders
import Platform
import TestSupport
import Testing

@Suite struct ChatCompletionTests {
    @Test func completesAndSendsTheKey() async throws {
        try await ProviderHarness.run(queryItems: [ProviderQueryItem(name: "api-version", value: "2024-06-01")]) { harness in
            let request = ChatCompletionRequest(
                model: "fake-chat", messages: [ChatMessage(role: "system", content: "be brief"), ChatMessage(role: "user", content: "hello there world")],
                temperature: 0.5, maxTokens: 42)
            let completion = try await harness.provider.complete(request)
            #expect(completion.choices == [ChatChoice(index: 0, message: ChatMessage(role: "assistant", content: "echo: hello there world"), finishReason: "stop")])
            // 2 + 3 words in, 4 words out.
            #expect(completion.usage == TokenUsage(promptTokens: 5, completionTokens: 4, totalTokens: 9))

            let sent = try #require(harness.fake.requests(to: .chat).first)
            #expect(sent.method == "POST")
            #expect(sent.path == "/v1/chat/completions")
            #expect(sent.query == "api-version=2024-06-01")
            #expect(sent.header("authorization") == "Bearer \(ProviderHarness.apiKey)")
            let json = try #require(sent.json)
            #expect(json["model"] as? String == "fake-chat")
            #expect(json["temperature"] as? Double == 0.5)
            #expect(json["max_tokens"] as? Int == 42)
            #expect(json["stream"] == nil)
            #expect((json["messages"] as? [[String: Any]])?.count == 2)
        }
    }

    @Test func azureStyleKeyHeader() async throws {
        try await ProviderHarness.run(authStyle: .apiKey) { harness in
            harness.fake.requireAPIKey(ProviderHarness.apiKey)
            _ = try await harness.provider.complete(.hello())
            let sent = try #require(harness.fake.requests.first)
            #expect(sent.header("api-key") == ProviderHarness.apiKey)
            #expect(sent.header("authorization") == nil)
        }
    }

    @Test func streamsChunksInOrderWithUsageLast() async throws {
        try await ProviderHarness.run { harness in
            harness.fake.setStreaming(.init(chunks: 4, interval: .milliseconds(20)))
            var deltas: [ChatCompletionDelta] = []
            for try await delta in try await harness.provider.stream(.hello()) { deltas.append(delta) }

            let text = deltas.flatMap(\.choices).compactMap(\.content).joined()
            #expect(text == "echo: hello there world")
            #expect(deltas.filter { $0.choices.contains { $0.content?.isEmpty == false } }.count == 4)
            #expect(deltas.first?.choices.first?.role == "assistant")
            #expect(deltas.flatMap(\.choices).compactMap(\.finishReason) == ["stop"])
            #expect(deltas.last?.usage == TokenUsage(promptTokens: 5, completionTokens: 4, totalTokens: 9))
            #expect(deltas.dropLast().allSatisfy { $0.usage == nil })

            let json = try #require(harness.fake.requests(to: .chat).first?.json)
            #expect(json["stream"] as? Bool == true)
            #expect((json["stream_options"] as? [String: Any])?["include_usage"] as? Bool == true)
            #expect(harness.fake.counters.streamsCompleted == 1)
        }
    }

    @Test(arguments: [
        FakeProvider.Streaming(chunks: 5, crlf: true),
        FakeProvider.Streaming(chunks: 5, fragmented: true),
        FakeProvider.Streaming(chunks: 5, crlf: true, fragmented: true, comments: true),
    ])
    func streamFramingVariants(streaming: FakeProvider.Streaming) async throws {
        try await ProviderHarness.run { harness in
            harness.fake.setStreaming(streaming)
            var text = ""
            var usage: TokenUsage?
            for try await delta in try await harness.provider.stream(.hello("ünïcode ✓ text")) {
                text += delta.choices.compactMap(\.content).joined()
                usage = delta.usage ?? usage
            }
            #expect(text == "echo: ünïcode ✓ text")
            #expect(usage?.completionTokens == 4)
        }
    }

    @Test func stoppingIterationCancelsTheUpstreamRequest() async throws {
        try await ProviderHarness.run { harness in
            harness.fake.setStreaming(.init(chunks: 20, interval: .milliseconds(100)))
            // As a consumer does: once the loop is left, nothing holds the stream any more.
            do {
                let stream = try await harness.provider.stream(.hello("a long answer that keeps coming"))
                for try await _ in stream { break }
            }
            #expect(await harness.fake.waitUntil(timeout: .seconds(3)) { $0.streamsAbandoned == 1 })
            #expect(harness.fake.counters.streamsCompleted == 0)
        }
    }

    @Test func cancellingTheTaskCancelsTheUpstreamRequest() async throws {
        try await ProviderHarness.run { harness in
            harness.fake.setStreaming(.init(chunks: 20, interval: .milliseconds(100)))
            let provider = harness.provider
            let firstSeen = AsyncStream.makeStream(of: Void.self)
            let consumer = Task {
                var count = 0
                for try await _ in try await provider.stream(.hello("a long answer that keeps coming")) {
                    count += 1
                    firstSeen.continuation.yield()
                }
                return count
            }
            for await _ in firstSeen.stream { break }
            consumer.cancel()
            #expect(await harness.fake.waitUntil(timeout: .seconds(3)) { $0.streamsAbandoned == 1 })
            let count = try? await consumer.value
            #expect((count ?? 0) < 20)
        }
    }

    @Test func cancellingAWaitingCompletionClosesTheConnection() async throws {
        try await ProviderHarness.run { harness in
            harness.fake.setBehavior(.delay(.seconds(10)))
            let provider = harness.provider
            let call = Task { try await provider.complete(.hello()) }
            #expect(await waitForRequest(harness.fake))
            let started = ContinuousClock.now
            call.cancel()
            let result = await call.result
            // Ended by the cancellation, not by the 10 s answer.
            #expect(ContinuousClock.now - started < .seconds(8))
            #expect(throws: CancellationError.self) { try result.get() }
            #expect(await harness.fake.waitUntil(timeout: .seconds(3)) { $0.requestsAbandoned == 1 })
        }
    }
}

func waitForRequest(_ fake: FakeProvider, count: Int = 1) async -> Bool {
    for _ in 0..<300 {
        if fake.requests.count >= count { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return false
}
