import AIProviders
import Foundation
import NIOCore
import Platform
import Synchronization

/// An `AIProvider` that answers from a script and remembers every request it got.
final class ScriptedProvider: AIProvider {
    struct State: Sendable {
        var chatRequests: [ChatCompletionRequest] = []
        var transcriptions: [TranscriptionRequest] = []
        var speeches: [SpeechRequest] = []
        /// Thrown by every call while set.
        var failure: DomainError?
        /// Tokens a completion reports: (prompt, completion).
        var tokens: @Sendable (ChatCompletionRequest) -> (Int, Int) = { _ in (10, 5) }
        var delay: Duration = .zero
        var streamChunks: [ChatCompletionDelta] = []
        /// After this many chunks the stream waits until it is cancelled.
        var hangAfter: Int?
        /// Completions running now, and the most that ran at once.
        var completionsRunning = 0
        var mostCompletionsAtOnce = 0
        var streamsCancelled = 0
        var streamsFinished = 0
        var transcript = "transcribed text"
    }

    let name: String
    let defaults: ProviderModels
    let state = Mutex(State())

    init(name: String = "openai", defaults: ProviderModels = ProviderModels(chat: "gpt-test")) {
        self.name = name
        self.defaults = defaults
    }

    func update(_ change: (inout State) -> Void) { state.withLock { change(&$0) } }
    var snapshot: State { state.withLock { $0 } }

    func complete(_ request: ChatCompletionRequest) async throws -> ChatCompletion {
        let (failure, tokens, delay) = state.withLock { state in
            state.chatRequests.append(request)
            state.completionsRunning += 1
            state.mostCompletionsAtOnce = max(state.mostCompletionsAtOnce, state.completionsRunning)
            return (state.failure, state.tokens, state.delay)
        }
        defer { state.withLock { $0.completionsRunning -= 1 } }
        if delay > .zero { try await Task.sleep(for: delay) }
        if let failure { throw failure }
        let (prompt, completion) = tokens(request)
        return ChatCompletion(
            choices: [ChatChoice(index: 0, message: ChatMessage(role: "assistant", content: "echo: \(request.messages.last?.content ?? "")"), finishReason: "stop")],
            usage: TokenUsage(promptTokens: prompt, completionTokens: completion, totalTokens: prompt + completion)
        )
    }

    func stream(_ request: ChatCompletionRequest) async throws -> AsyncThrowingStream<ChatCompletionDelta, any Error> {
        let (failure, chunks, hangAfter) = state.withLock { state in
            state.chatRequests.append(request)
            return (state.failure, state.streamChunks, state.hangAfter)
        }
        if let failure { throw failure }
        let (stream, continuation) = AsyncThrowingStream<ChatCompletionDelta, any Error>.makeStream()
        continuation.onTermination = { [self] termination in
            self.state.withLock {
                if case .cancelled = termination { $0.streamsCancelled += 1 } else { $0.streamsFinished += 1 }
            }
        }
        for (index, chunk) in chunks.enumerated() {
            if let hangAfter, index >= hangAfter { return stream }
            continuation.yield(chunk)
        }
        if hangAfter == nil { continuation.finish() }
        return stream
    }

    func transcribe(_ request: TranscriptionRequest) async throws -> String {
        let (failure, transcript, delay) = state.withLock { state in
            state.transcriptions.append(request)
            return (state.failure, state.transcript, state.delay)
        }
        if delay > .zero { try await Task.sleep(for: delay) }
        if let failure { throw failure }
        return transcript
    }

    func speak(_ request: SpeechRequest) async throws -> SpeechAudio {
        let failure = state.withLock { state in
            state.speeches.append(request)
            return state.failure
        }
        if let failure { throw failure }
        return SpeechAudio(audio: ByteBuffer(string: "audio:\(request.format)"), contentType: "audio/mpeg")
    }
}

/// An `AudioTranscoding` that pretends every upload lasts `durationSeconds`.
final class ScriptedTranscoder: AudioTranscoding {
    let calls = Mutex<[(bytes: Int, fileExtension: String)]>([])
    let durationSeconds: Double

    init(durationSeconds: Double = 90) {
        self.durationSeconds = durationSeconds
    }

    func transcodeForTranscription(_ audio: ByteBuffer, fileExtension: String) async throws -> TranscodedAudio {
        calls.withLock { $0.append((audio.readableBytes, fileExtension)) }
        return TranscodedAudio(mp3: ByteBuffer(string: "mp3-of-\(audio.readableBytes)"), durationSeconds: durationSeconds)
    }
}
