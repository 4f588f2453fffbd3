import Logging
import NIOCore
import Platform
import Testing

@testable import AIProviders

/// The events of a provider's stream as the `/v1` pass-through reads them.
@Suite struct ProviderEventsTests {
    private func events(_ text: String) async throws -> [String] {
        let body = ProviderResponseBody()
        _ = body.append(ByteBuffer(string: text))
        body.finish()
        let failures = ProviderFailures(provider: "p", apiKey: "k", logger: Logger(label: "test"))
        var out: [String] = []
        for try await event in ProviderEvents(body: body, failures: failures, maxEventBytes: 1 << 20) { out.append(event) }
        return out
    }

    @Test(arguments: ["data: [DONE]\n\n", "data: [DONE]\n", "data: [DONE]", "data:  [DONE] \r\n"])
    func doneEndsTheStreamWithOrWithoutItsBlankLine(_ done: String) async throws {
        #expect(try await events(#"data: {"a":1}"# + "\n\n" + done) == [#"{"a":1}"#])
    }

    @Test(arguments: [#"data: {"a":1}"# + "\n\n", #"data: {"a":1}"# + "\n\n" + #"data: {"b":"#, #"data: {"a":1}"# + "\n\n" + #"data: {"b":2}"#])
    func aBodyEndingWithoutDoneWasCutOff(_ text: String) async {
        let error = await domainError { _ = try await events(text) }
        #expect(error?.kind == .upstreamFailure)
    }

    @Test func anEventOnSeveralDataLinesIsOneEvent() async throws {
        #expect(try await events("data: {\"a\":1,\ndata: \"b\":2}\n\ndata: [DONE]\n\n") == ["{\"a\":1,\n\"b\":2}"])
    }
}
