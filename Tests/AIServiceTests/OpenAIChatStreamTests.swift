import Testing
@testable import AIService

/// How the `/v1` stream relay reads each of the provider's events.
@Suite struct OpenAIChatStreamTests {
    private func examine(_ data: String, forwardsUsage: Bool = false) -> (forwarded: String?, usage: Int?, characters: Int, failed: Bool) {
        var answer: GenAIContent.StreamedAnswer?
        let result = OpenAIChatStream.examine(data, forwardsUsage: forwardsUsage, answer: &answer)
        return (result.forwarded.map { String(decoding: $0, as: UTF8.self) }, result.usage?.totalTokens, result.characters, result.failed)
    }

    @Test func aChunkIsForwardedAndItsTextCounted() {
        let chunk = #"{"choices":[{"index":0,"delta":{"content":"Hello"}}]}"#
        let seen = examine(chunk)
        #expect(seen.forwarded == chunk && seen.characters == 5 && !seen.failed && seen.usage == nil)
    }

    @Test func theProvidersErrorEventIsForwardedAndFailsTheCall() {
        let event = #"{"error":{"message":"overloaded","type":"server_error"}}"#
        let seen = examine(event)
        #expect(seen.forwarded == event)
        #expect(seen.failed)
        #expect(!examine(#"{"error":null,"choices":[]}"#).failed)
    }

    @Test func usageIsKeptBackUnlessTheClientAskedForIt() {
        let usage = #"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#
        #expect(examine(usage).forwarded == nil && examine(usage).usage == 7)
        #expect(examine(usage, forwardsUsage: true).forwarded == usage)
    }
}
