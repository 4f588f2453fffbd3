@testable import AIService
import Platform
import Testing
import WireFormats

/// What a call's request tells admission of its size before it runs.
@Suite("Call estimates")
struct CallEstimateTests {
    static func body(_ members: [(String, JSONValue)]) -> JSONObject {
        JSONObject([("model", .string("gpt-4o-mini"))] + members)
    }

    @Test("a /v1 chat body: the prompt at four characters a token, plus the answer's limit for each choice")
    func openAIChatBody() {
        let prompt = 400  // characters: 100 tokens
        #expect(OpenAIBody.expectedChat(Self.body([]), promptCharacters: prompt) == Consumption(promptTokens: 100, completionTokens: 0, totalTokens: 100))
        #expect(OpenAIBody.expectedChat(Self.body([("max_tokens", .integer(300))]), promptCharacters: prompt).totalTokens == 400)
        #expect(OpenAIBody.expectedChat(Self.body([("max_tokens", .integer(300)), ("n", .integer(3))]), promptCharacters: prompt).totalTokens == 1_000)
        // The newer field wins over the older one.
        let both = Self.body([("max_tokens", .integer(300)), ("max_completion_tokens", .integer(50))])
        #expect(OpenAIBody.expectedChat(both, promptCharacters: prompt).completionTokens == 50)
    }

    @Test("limits that are not positive numbers count as none; huge ones are capped, not trapped on")
    func oddLimits() {
        for odd: JSONValue in [.number("0"), .number("-5"), .string("300"), .null, .number("0.5")] {
            #expect(OpenAIBody.expectedChat(Self.body([("max_tokens", odd)]), promptCharacters: 8).totalTokens == 2, "\(odd)")
        }
        let huge = OpenAIBody.expectedChat(Self.body([("max_tokens", .number("1e300")), ("n", .number("1e300"))]), promptCharacters: 8)
        #expect(huge.completionTokens == Int(Int32.max) * 128)
    }

    @Test("a signed chat completion: its messages, and the answer's limit when it has one")
    func chatRequest() {
        #expect(Consumption.expected(promptCharacters: 0, answerLimit: nil).totalTokens == 1)  // a prompt was sent
        #expect(Consumption.expected(promptCharacters: 4_000, answerLimit: 256) == Consumption(promptTokens: 1_000, completionTokens: 256, totalTokens: 1_256))
        #expect(Consumption.expected(promptCharacters: 4_000, answerLimit: 0).totalTokens == 1_000)
    }

    @Test("an estimate is never negative, nor a cost that is not a finite positive number")
    func estimateBounds() {
        #expect(CallEstimate(tokens: -3, cost: -1) == .unknown)
        #expect(CallEstimate(tokens: 5, cost: .nan).cost == 0)
        #expect(CallEstimate(tokens: 5, cost: .infinity).cost == 0)
    }

    @Test("embedding inputs: strings, token ids or token id arrays, one kind per request; anything else is the client's error")
    func embeddingInputs() throws {
        for valid in [#""x""#, #"["a","b"]"#, "[1,2,3]", "[[1,2],[3]]"] {
            let input = try JSONParser.parse(Array(valid.utf8))
            #expect(throws: Never.self, "\(valid)") { try OpenAIService.checkEmbeddingInput(input) }
        }
        let invalids = [#"[1.5,"a"]"#, #"["a",1]"#, #"[[1],"a"]"#, "[-1]", "[1.5]", "[[]]", #"[""]"#, "[]", #""""#, "[true]", "[[1,[2]]]"]
        for invalid in invalids {
            let input = try JSONParser.parse(Array(invalid.utf8))
            #expect(throws: DomainError.self, "\(invalid)") { try OpenAIService.checkEmbeddingInput(input) }
        }
    }
}
