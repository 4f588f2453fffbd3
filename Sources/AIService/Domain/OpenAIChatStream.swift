import AIProviders
import Foundation
import Platform
import WireFormats

/// An admitted, opened OpenAI-compatible completion stream: the provider's chunks, relayed as
/// they come. The provider is always asked for usage (billing must be exact); its usage chunk
/// reaches the client only when the client asked for it. The invocation is finished exactly
/// once, as with `ChatStream`.
public struct OpenAIChatStream: Sendable {
    let events: ProviderEvents
    let finisher: StreamFinisher
    let forwardsUsage: Bool
    public let rateLimit: RateLimitState?

    /// Hands the data of each event to `write`; cancelling or a failing `write` (the client left)
    /// stops the provider's stream, and the usage record then says 499.
    public func relay(_ write: ([UInt8]) async throws -> Void) async throws {
        var usage: Consumption?
        var relayedCharacters = 0
        var relayedNothing = true
        var providerFailed = false
        var answer: GenAIContent.StreamedAnswer? = finisher.capturesContent ? GenAIContent.StreamedAnswer() : nil
        do {
            for try await data in events {
                if relayedNothing { finisher.firstChunk(); relayedNothing = false }
                let (forwarded, reported, characters, failed) = Self.examine(data, forwardsUsage: forwardsUsage, answer: &answer)
                if let reported { usage = reported }
                providerFailed = providerFailed || failed
                relayedCharacters += characters
                guard let forwarded else { continue }
                do {
                    try await write(forwarded)
                } catch {
                    throw ChatStream.ClientGone()
                }
            }
            try Task.checkCancellation()
        } catch {
            let cancelled = Task.isCancelled || error is CancellationError || error is ChatStream.ClientGone
            await finisher.finish(usage: usage, relayedCharacters: relayedCharacters, answer: answer, error: error, cancelled: cancelled)
            throw error
        }
        // A provider that reported an error inside the stream (an `error` event, relayed to the
        // client as it came) failed this call, though its stream ended as usual.
        let failure = providerFailed ? DomainError(.upstreamFailure, "the AI provider failed while streaming") : nil
        await finisher.finish(usage: usage, relayedCharacters: relayedCharacters, answer: answer, error: failure, cancelled: false)
    }

    /// What to forward of one event (nil: nothing), the usage it reports, the characters of
    /// text it carries (added to `answer` when there is one) and whether it is the provider's
    /// `error` event. An event that is not JSON is forwarded as it came.
    static func examine(
        _ data: String, forwardsUsage: Bool, answer: inout GenAIContent.StreamedAnswer?
    ) -> (forwarded: [UInt8]?, usage: Consumption?, characters: Int, failed: Bool) {
        let bytes = Array(data.utf8)
        guard case .object(var chunk)? = try? JSONParser.parse(bytes) else { return (bytes, nil, 0, false) }
        let failed = chunk["error"].map { $0 != .null } ?? false
        let choices = chunk["choices"]?.arrayValue ?? []
        answer?.add(openAIChoices: choices)
        let characters = choices.reduce(0) { $0 + OpenAIBody.textCharacters(ofContent: $1.objectValue?["delta"]?.objectValue?["content"]) }
        guard let usageValue = chunk["usage"], usageValue != .null else { return (bytes, nil, characters, failed) }
        let usage = OpenAIBody.usage(usageValue)
        if forwardsUsage { return (bytes, usage, characters, failed) }
        if choices.isEmpty { return (nil, usage, characters, failed) }
        // Usage riding on a chunk with choices: the choices go on, the usage stays here.
        chunk["usage"] = nil
        return (JSONWriter.bytes(.object(chunk)), usage, characters, failed)
    }
}
