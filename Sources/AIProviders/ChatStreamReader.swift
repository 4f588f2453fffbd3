import Foundation
import NIOCore
import NIOFoundationCompat
import Platform
import WireFormats

/// Reads a streamed chat completion (Server-Sent Events of `chat.completion.chunk`s ending with
/// `data: [DONE]`) and yields its deltas.
struct StreamReader: Sendable {
    let failures: ProviderFailures
    let maxEventBytes: Int

    func read<Body: AsyncSequence>(
        _ body: Body, into continuation: AsyncThrowingStream<ChatCompletionDelta, any Error>.Continuation
    ) async throws where Body.Element == ByteBuffer {
        var parser = ServerSentEventParser(maxEventBytes: maxEventBytes)
        var finished = false
        do {
            for try await buffer in body {
                for event in try parser.feed(buffer.readableBytesView) {
                    if try handle(event, continuation, &finished) { return }
                }
            }
        } catch is ServerSentEventParser.EventTooLarge {
            throw DomainError(.upstreamFailure, "the AI provider '\(failures.provider)' sent an answer that is too large")
        }
        if let event = parser.finish(), try handle(event, continuation, &finished) { return }
        // Without `[DONE]` or a finish reason the answer was cut off, not complete.
        guard finished else {
            throw DomainError(.upstreamFailure, "the AI provider '\(failures.provider)' ended the stream early")
        }
    }

    /// true once the stream is over (`[DONE]`).
    private func handle(
        _ event: ServerSentEvent, _ continuation: AsyncThrowingStream<ChatCompletionDelta, any Error>.Continuation, _ finished: inout Bool
    ) throws -> Bool {
        let data = event.data.trimmingHTTPWhitespace()
        if data == "[DONE]" { return true }
        if data.isEmpty { return false }
        guard let chunk = try? JSONDecoder().decode(OpenAIWire.ChatChunk.self, from: Data(data.utf8)) else {
            throw failures.unreadable(operation: "chat stream")
        }
        if let error = chunk.error {
            failures.logger.debug(
                "AI provider failed inside a stream", metadata: ["hint": "\(error.type ?? "-")"])
            throw DomainError(.upstreamFailure, "the AI provider '\(failures.provider)' failed while streaming")
        }
        let choices = (chunk.choices ?? []).enumerated().map { offset, choice in
            ChatDeltaChoice(
                index: choice.index ?? offset, role: choice.delta?.role, content: choice.delta?.content, finishReason: choice.finishReason)
        }
        if choices.contains(where: { $0.finishReason != nil }) { finished = true }
        let usage = chunk.usage?.tokenUsage
        guard !choices.isEmpty || usage != nil else { return false }
        continuation.yield(ChatCompletionDelta(choices: choices, usage: usage))
        return false
    }
}
