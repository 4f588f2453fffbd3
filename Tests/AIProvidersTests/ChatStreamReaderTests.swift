import Logging
import NIOCore
import Platform
import Testing

@testable import AIProviders

@Suite struct ChatStreamReaderTests {
    private func read(_ text: String) async throws -> [ChatCompletionDelta] {
        let reader = StreamReader(failures: ProviderFailures(provider: "p", apiKey: "k", logger: Logger(label: "test")), maxEventBytes: 1 << 20)
        let body = AsyncStream<ByteBuffer> { continuation in
            continuation.yield(ByteBuffer(string: text))
            continuation.finish()
        }
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: ChatCompletionDelta.self)
        try await reader.read(body, into: continuation)
        continuation.finish()
        var deltas: [ChatCompletionDelta] = []
        for try await delta in stream { deltas.append(delta) }
        return deltas
    }

    private let hello = #"data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}"# + "\n\n"
    private let stop = #"data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"# + "\n\n"

    @Test("a provider's negative token counts are none, huge ones are capped: usage never lowers what a user spent")
    func usageCountsAreSane() async throws {
        let negative = #"data: {"choices":[],"usage":{"prompt_tokens":-1000000,"completion_tokens":-1000000,"total_tokens":-2000000}}"# + "\n\n"
        #expect(try await read(hello + negative + stop).allSatisfy { $0.usage == nil })
        let mixed = #"data: {"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":-3,"total_tokens":9000000000}}"# + "\n\n"
        let usage = try await read(hello + mixed + stop).compactMap(\.usage).last
        #expect(usage == TokenUsage(promptTokens: 12, completionTokens: 0, totalTokens: Int(Int32.max)))
        let partial = #"data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":5}}"# + "\n\n"
        #expect(try await read(hello + partial + stop).compactMap(\.usage).last == TokenUsage(promptTokens: 7, completionTokens: 5, totalTokens: 12))
    }

    @Test func providerWithoutDoneButWithFinishReasonIsComplete() async throws {
        let deltas = try await read(hello + stop)
        #expect(deltas.count == 2)
        #expect(deltas.first?.choices.first?.content == "Hi")
    }

    @Test func cutOffStreamIsAFailure() async {
        let error = await domainError { _ = try await read(hello) }
        #expect(error?.kind == .upstreamFailure)
    }

    @Test func errorEventIsAFailure() async {
        let error = await domainError {
            _ = try await read(hello + #"data: {"error":{"message":"overloaded sk-secret","type":"server_error"}}"# + "\n\n")
        }
        #expect(error?.kind == .upstreamFailure)
        #expect(error?.message.contains("sk-secret") == false)
    }

    @Test func garbageEventIsAFailure() async {
        let error = await domainError { _ = try await read("data: {not json\n\n") }
        #expect(error?.kind == .upstreamFailure)
    }

    @Test func nothingAfterDoneIsRead() async throws {
        let deltas = try await read(hello + "data: [DONE]\n\n" + "data: {not json\n\n")
        #expect(deltas.count == 1)
    }
}
