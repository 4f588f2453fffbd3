import AISaaSProtos
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Testing
@testable import Gateway

@Suite("JSON written directly")
struct DirectJSONEncoderTests {
    private struct Leaf: Encodable {
        var text = "plain"
        var number = 42
        var fraction = 0.25
        var whole = 3.0
        var costs = [0.000123, 1e-7, 12_345_678.9, 1e21, -0.5]
        var flag = true
        var missing: String? = nil
        var present: Int64? = 7
        var tiny: Int8 = -3
        var unsigned: UInt32 = 4_000_000_000
        var extremes: [Int64] = [0, -1, 9, 10, Int64.min, Int64.max]
        var huge = UInt64.max
    }

    private enum Kind: String, Encodable { case chat, speech }

    private struct Tree: Encodable {
        var leaves = [Leaf(), Leaf(text: "second", number: -1)]
        var kinds: [Kind] = [.chat, .speech]
        var nested: [[Int]] = [[1, 2], [], [3]]
        var empty: [String] = []
        var optionalLeaf: Leaf? = nil
        var child = Leaf(text: "child")
        var strings = ["a", "b"]
    }

    /// Writes through nested containers it asks for by key, and skips nil with encodeIfPresent.
    private struct ManualContainers: Encodable {
        enum Keys: String, CodingKey { case id, meta, tags, after, skipped }
        enum MetaKeys: String, CodingKey { case created, owner }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode("x1", forKey: .id)
            var meta = container.nestedContainer(keyedBy: MetaKeys.self, forKey: .meta)
            try meta.encode(1_733_500_000, forKey: .created)
            try meta.encode("alice", forKey: .owner)
            var tags = container.nestedUnkeyedContainer(forKey: .tags)
            try tags.encode("red")
            try tags.encode(2)
            var inner = tags.nestedContainer(keyedBy: MetaKeys.self)
            try inner.encode("bob", forKey: .owner)
            // A write to the outer container closes the nested ones.
            try container.encode(true, forKey: .after)
            try container.encodeIfPresent(String?.none, forKey: .skipped)
        }
    }

    private struct Nothing: Encodable {
        func encode(to encoder: any Encoder) throws {}
    }

    private struct HoldsNothing: Encodable {
        let nothing = Nothing()
    }

    /// Asks for a single-value container and writes nothing into it.
    private struct EmptySingle: Encodable {
        func encode(to encoder: any Encoder) throws {
            _ = encoder.singleValueContainer()
        }
    }

    private struct HoldsEmptySingle: Encodable {
        let empty = EmptySingle()
        let after = 1
    }

    private struct Failing: Encodable {
        struct Failure: Error {}
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode("half", forKey: .part)
            throw Failure()
        }
        enum Keys: String, CodingKey { case part }
    }

    /// Swallows its field's failure: JSONEncoder leaves the field out.
    private struct SwallowsFailure: Encodable {
        enum Keys: String, CodingKey { case bad, good }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try? container.encode(Failing(), forKey: .bad)
            try container.encode(1, forKey: .good)
        }
    }

    private struct RepeatedKey: Encodable {
        enum Keys: String, CodingKey { case key }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(1, forKey: .key)
            try container.encode(2, forKey: .key)
        }
    }

    private struct RepeatedNested: Encodable {
        enum Keys: String, CodingKey { case nested }
        enum Inner: String, CodingKey { case a, b }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            var first = container.nestedContainer(keyedBy: Inner.self, forKey: .nested)
            try first.encode(1, forKey: .a)
            var second = container.nestedContainer(keyedBy: Inner.self, forKey: .nested)
            try second.encode(2, forKey: .b)
        }
    }

    /// Two parts into one encoder that share a field: JSONEncoder keeps the second.
    private struct MergedOverlap: Encodable {
        let first = Leaf()
        let second = Leaf(text: "second wins")
        func encode(to encoder: any Encoder) throws {
            try first.encode(to: encoder)
            try second.encode(to: encoder)
        }
    }

    private struct WithData: Encodable {
        var blob = Data([0, 1, 2, 250])
        var link = URL(string: "https://example.com/a b")
    }

    private struct NotANumber: Encodable {
        var value = Double.nan
    }

    private struct Single: Encodable {
        var value: Float = 0.1
    }

    private struct Escapes: Encodable {
        var text = "quote \" backslash \\ slash / newline \n tab \t bell \u{07} unicode é 漢字 👋 end"
        var controls = "\u{00}\u{1F}\u{08}\u{0C}\r"
    }

    /// A value written in two parts into one encoder, as `RegisteredUser` is.
    private struct Merged: Encodable {
        enum Keys: String, CodingKey { case extra }
        let leaf = Leaf()

        func encode(to encoder: any Encoder) throws {
            try leaf.encode(to: encoder)
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode("more", forKey: .extra)
        }
    }

    private func direct(_ value: some Encodable) throws -> Data? {
        guard let buffer = try DirectJSONEncoder.bytes(value) else { return nil }
        return Data(buffer.readableBytesView)
    }

    private func foundation(_ value: some Encodable) throws -> Data {
        try Gateway.ResponseBody.encoder.encode(value)
    }

    private func sameJSON(_ value: some Encodable, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let written = try #require(try direct(value), "written directly", sourceLocation: sourceLocation)
        let parsed = try JSONSerialization.jsonObject(with: written, options: [.fragmentsAllowed]) as? NSObject
        let expected = try JSONSerialization.jsonObject(with: try foundation(value), options: [.fragmentsAllowed]) as? NSObject
        #expect(parsed != nil, sourceLocation: sourceLocation)
        #expect(parsed == expected, "\(String(decoding: written, as: UTF8.self))", sourceLocation: sourceLocation)
    }

    @Test("structs, arrays, optionals, enums, numbers and nested containers come out as JSONEncoder's")
    func matchesFoundation() throws {
        try sameJSON(Leaf())
        try sameJSON(Tree())
        try sameJSON(Tree(optionalLeaf: Leaf(missing: "now here")))
        try sameJSON(ManualContainers())
        try sameJSON(Escapes())
        try sameJSON(Merged())
        try sameJSON([Leaf(), Leaf()])
        try sameJSON(["k": 1])
        try sameJSON("top-level string")
        try sameJSON(Optional<Int>.none)
        // JSONEncoder refuses such a value at the top; inside another it is an empty object.
        try sameJSON(HoldsNothing())
    }

    @Test("the gateway's answers: a user with its secret, a profile with its token, a completion")
    func gatewayPayloads() throws {
        var user = Grpc_User_V1_UserWithSecret()
        user.user.id = "01JEXAMPLE"
        user.user.username = "zoë \"quoted\""
        user.user.accessKey = "AK123"
        user.user.createdAt = 1_733_500_000_000
        user.secretKey = "SK/with+chars=="
        try sameJSON(RegisteredUser(user))
        try sameJSON(ProfileWithToken(profile: UserProfile(user.user), session: LoginResult(accessToken: "a.b.c", tokenType: "Bearer", expiresAt: 99)))

        var completion = Grpc_Ai_V1_CreateChatCompletionChoicesResponse()
        var choice = Grpc_Ai_V1_CreateChatCompletionResponseChoicesInner()
        choice.index = 0
        choice.message.role = "assistant"
        choice.message.content = "Hello\nthere"
        choice.finishReason = "stop"
        completion.choices = [choice, Grpc_Ai_V1_CreateChatCompletionResponseChoicesInner()]
        completion.usage.promptTokens = 3
        completion.usage.completionTokens = 4
        completion.usage.totalTokens = 7
        try sameJSON(CompletionView(completion))
    }

    @Test("keys come in the order the type writes them; whole doubles lose their .0")
    func exactBytes() throws {
        struct Ordered: Encodable {
            let zeta = 1
            let alpha = 2.0
            let mid = "m"
        }
        let written = try #require(try direct(Ordered()))
        #expect(String(decoding: written, as: UTF8.self) == #"{"zeta":1,"alpha":2,"mid":"m"}"#)
    }

    @Test("an empty single value is an empty object, as JSONEncoder writes it")
    func emptySingleValue() throws {
        try sameJSON(HoldsEmptySingle())
        let written = try #require(try direct(HoldsEmptySingle()))
        #expect(String(decoding: written, as: UTF8.self) == #"{"empty":{},"after":1}"#)
    }

    @Test("a failure part way is thrown; one a type swallows, and keys written twice, are left to JSONEncoder")
    func partialAndRepeatedWrites() async throws {
        #expect(throws: Failing.Failure.self) { try direct(Failing()) }
        #expect(try direct(SwallowsFailure()) == nil)
        #expect(try direct(RepeatedKey()) == nil)
        #expect(try direct(RepeatedNested()) == nil)
        #expect(try direct(MergedOverlap()) == nil)
        // Through the envelope, each comes out exactly as JSONEncoder writes it.
        func viaEnvelope(_ value: some Encodable) async throws {
            let expected = String(decoding: try foundation(Envelope(data: value)), as: UTF8.self)
            #expect(try await bodyText(Gateway.ResponseBody.success(value)) == expected)
        }
        try await viaEnvelope(SwallowsFailure())
        try await viaEnvelope(RepeatedKey())
        try await viaEnvelope(RepeatedNested())
        try await viaEnvelope(MergedOverlap())
    }

    @Test("what JSONEncoder writes its own way is left to it: Data, URL, Float, non-finite numbers")
    func fallsBack() throws {
        #expect(try direct(WithData()) == nil)
        #expect(try direct(NotANumber()) == nil)
        #expect(try direct(Single()) == nil)
        #expect(try direct([Data([1])]) == nil)
    }

    @Test("the envelope: exactly the bytes JSONEncoder wrote, for payloads and for none")
    func envelope() async throws {
        let response = try Gateway.ResponseBody.success(KeyPair(accessKey: "AK", secretKey: "SK"))
        #expect(try await bodyText(response) == #"{"code":0,"data":{"accessKey":"AK","secretKey":"SK"},"message":"success","statusCode":200}"#)
        #expect(response.headers[.contentType] == "application/json; charset=utf-8")
        #expect(try await bodyText(Gateway.ResponseBody.success(WithData())) == String(decoding: try foundation(Envelope(data: WithData())), as: UTF8.self))
        #expect(try await bodyText(Gateway.ResponseBody.empty()) == String(decoding: try foundation(Envelope<String>(data: nil)), as: UTF8.self))
    }

    @Test("a stream event is the chunk's JSON between `data: ` and a blank line")
    func streamEvent() throws {
        var chunk = Grpc_Ai_V1_ChatCompletionChunk()
        var choice = Grpc_Ai_V1_ChatCompletionChunkChoice()
        choice.delta.content = "Hel"
        chunk.choices = [choice]
        let event = String(buffer: try InvokeRoutes.event(CompletionChunkView(chunk)))
        #expect(event.hasPrefix("data: {") && event.hasSuffix("}\n\n"))
        let json = Data(event.dropFirst("data: ".count).dropLast(2).utf8)
        let parsed = try JSONSerialization.jsonObject(with: json) as? NSObject
        #expect(parsed == (try JSONSerialization.jsonObject(with: try foundation(CompletionChunkView(chunk))) as? NSObject))
    }

    private func bodyText(_ response: Response) async throws -> String {
        let collected = CollectedBody()
        try await response.body.write(CollectingWriter(into: collected))
        return String(buffer: collected.buffer)
    }
}

private final class CollectedBody {
    var buffer = ByteBuffer()
}

private struct CollectingWriter: ResponseBodyWriter {
    let into: CollectedBody

    mutating func write(_ buffer: ByteBuffer) async throws {
        var buffer = buffer
        into.buffer.writeBuffer(&buffer)
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
