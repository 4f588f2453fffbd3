import AIProviders
import Foundation
import Synchronization

/// An admitted, opened completion stream. Its invocation is finished (usage record + quota
/// settlement) exactly once: by `relay` when it ends, fails or is cancelled, or — when nobody
/// ever relays it, e.g. the RPC was cancelled before gRPC ran the response producer — when the
/// last copy of the stream goes away.
public struct ChatStream: Sendable {
    let chunks: AsyncThrowingStream<ChatCompletionDelta, any Error>
    let finisher: StreamFinisher

    /// Thrown by `relay` when the client went away.
    public struct ClientGone: Error {}

    /// Hands each chunk to `write` as it arrives. Cancelling the task (or `write` failing, which
    /// happens when the client is gone) stops the provider's stream; the usage record then says 499.
    /// Without the provider's usage chunk the tokens are estimated from the text.
    public func relay(_ write: (ChatCompletionDelta) async throws -> Void) async throws {
        var usage: Consumption?
        var relayedCharacters = 0
        var relayedNothing = true
        var answer: GenAIContent.StreamedAnswer? = finisher.capturesContent ? GenAIContent.StreamedAnswer() : nil
        do {
            for try await chunk in chunks {
                if relayedNothing { finisher.firstChunk(); relayedNothing = false }
                if let reported = chunk.usage { usage = Consumption(reported) }
                answer?.add(chunk)
                relayedCharacters += chunk.choices.reduce(0) { $0 + ($1.content?.count ?? 0) }
                do {
                    try await write(chunk)
                } catch {
                    throw ClientGone()
                }
            }
            try Task.checkCancellation()
        } catch {
            let cancelled = Task.isCancelled || error is CancellationError || error is ClientGone
            await finisher.finish(usage: usage, relayedCharacters: relayedCharacters, answer: answer, error: error, cancelled: cancelled)
            throw error
        }
        await finisher.finish(usage: usage, relayedCharacters: relayedCharacters, answer: answer, error: nil, cancelled: false)
    }
}

/// Finishes one stream's invocation once, whichever path gets there first.
final class StreamFinisher: Sendable {
    private let finished = Mutex(false)
    private let admission: Admission
    private let pipeline: InvocationPipeline
    private let promptCharacters: Int

    init(admission: Admission, pipeline: InvocationPipeline, promptCharacters: Int) {
        self.admission = admission
        self.pipeline = pipeline
        self.promptCharacters = promptCharacters
    }

    convenience init(admission: Admission, pipeline: InvocationPipeline, prompt: [ChatMessage], promptCharacters: Int) {
        self.init(admission: admission, pipeline: pipeline, promptCharacters: promptCharacters)
        admission.recordInput(GenAIContent.messages(prompt))
    }

    /// Whether the relayed text is wanted for the span (`GenAIContent`).
    var capturesContent: Bool { admission.capturesContent }

    static let estimatedNote = "usage estimated: stream ended early"

    /// The provider's usage when it sent it, else an estimate of ~4 characters per token: the
    /// prompt was sent and paid for even when no answer came back.
    func consumption(usage: Consumption?, relayedCharacters: Int) -> (Consumption, note: String?) {
        if let usage { return (usage, nil) }
        let prompt = max(1, (promptCharacters + 3) / 4)
        let completion = (relayedCharacters + 3) / 4
        return (Consumption(promptTokens: prompt, completionTokens: completion, totalTokens: prompt + completion), Self.estimatedNote)
    }

    /// The provider's first chunk arrived.
    func firstChunk() {
        pipeline.instruments.firstToken(admission)
    }

    /// True for the first caller only.
    private func claim() -> Bool {
        finished.withLock { done in
            defer { done = true }
            return !done
        }
    }

    func finish(
        usage: Consumption?, relayedCharacters: Int, answer: GenAIContent.StreamedAnswer? = nil, error: (any Error)?, cancelled: Bool
    ) async {
        guard claim() else { return }
        if let answer { admission.recordOutput(answer.messages) }
        var (consumed, note) = consumption(usage: usage, relayedCharacters: relayedCharacters)
        if note != nil && error == nil && !cancelled { note = "usage estimated: the provider reported none" }
        await pipeline.finish(admission, consumed: consumed, error: error, cancelled: cancelled, note: note)
    }

    /// Nobody relayed the stream: book the prompt as cancelled, in a task of its own because
    /// deinit cannot wait. Dropping the stream also cancels the provider's request.
    deinit {
        guard claim() else { return }
        let (consumed, note) = consumption(usage: nil, relayedCharacters: 0)
        let admission = admission, pipeline = pipeline
        Task.detached {
            await pipeline.finish(admission, consumed: consumed, error: CancellationError(), cancelled: true, note: note)
        }
    }
}
