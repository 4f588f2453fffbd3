import Foundation
import Testing
import WireFormats

@Suite struct JSONParserTests {
    private func parse(_ text: String) throws -> JSONValue {
        try JSONParser.parse(Array(text.utf8))
    }

    @Test func readsEveryKindOfValue() throws {
        let value = try parse(#" {"a": [1, -2.5e+3, true, false, null], "b": {"c": "d\n\u00e9\ud83d\ude00"}, "e": ""} "#)
        guard case .object(let object) = value else {
            Issue.record("not an object")
            return
        }
        #expect(object.keys == ["a", "b", "e"])
        #expect(object["a"] == .array([.number("1"), .number("-2.5e+3"), .bool(true), .bool(false), .null]))
        #expect(object["b"]?.objectValue?["c"] == .string("d\né😀"))
        #expect(object["e"] == .string(""))
    }

    @Test func numbersKeepTheirText() throws {
        for text in ["0", "-0", "1e400", "0.1", "12345678901234567890123", "1E-7", "-12.50"] {
            #expect(try parse(text) == .number(text))
            #expect(JSONWriter.bytes(.number(text)) == Array(text.utf8))
        }
        #expect(try parse("1e400").doubleValue == .infinity)
    }

    @Test("refuses what RFC 8259 does not allow", arguments: [
        "", " ", "{", "}", "{\"a\":1,}", "[1,]", "[,1]", "{\"a\" 1}", "{a:1}", "{'a':1}", "[01]", "[1.]", "[.5]", "[1e]",
        "[+1]", "[NaN]", "[Infinity]", "[-]", "tru", "nul", "[true false]", "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"",
        "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"a\u{01}b\"", "{\"a\":1}{}", "[1] x", "// c\n1", "{\"a\":1,\"a\":2}", "\u{FEFF}{}",
    ])
    func refusesInvalidJSON(_ text: String) {
        #expect(throws: JSONSyntaxError.self) { try parse(text) }
    }

    @Test func refusesInvalidUTF8() {
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse([0x22, 0xFF, 0x22]) }
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse([0x22, 0x5C, 0x6E, 0xC3, 0x22]) }
    }

    @Test func boundsNesting() throws {
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(throws: JSONSyntaxError.self) { try parse(deep) }
        let fine = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        _ = try parse(fine)
        // Far deeper than any stack allows with a recursive parser: still a plain error.
        let absurd = String(repeating: "[{\"a\":", count: 100_000)
        #expect(throws: JSONSyntaxError.self) { try parse(absurd) }
    }

    @Test func errorsNeverEchoTheInput() {
        do {
            _ = try JSONParser.parse(Array("{\"secret-value\": tru}".utf8))
            Issue.record("accepted")
        } catch {
            #expect(!error.description.contains("secret"))
            #expect(error.offset == 17)
        }
    }

    @Test func writerEscapesAndRoundTrips() throws {
        let value = JSONValue.object(JSONObject([
            ("quote\"back\\slash", .string("line\nfeed\ttab\u{01}ctl/é")), ("n", .number("-1.5")), ("list", .array([.null, .bool(true)])),
        ]))
        let bytes = JSONWriter.bytes(value)
        #expect(String(decoding: bytes, as: UTF8.self) == #"{"quote\"back\\slash":"line\nfeed\ttab\u0001ctl/é","n":-1.5,"list":[null,true]}"#)
        #expect(try JSONParser.parse(bytes) == value)
    }

    @Test func objectsKeepMemberOrderAndReplaceInPlace() {
        var object = JSONObject([("model", .string("a")), ("messages", .array([])), ("stream", .bool(true))])
        object["model"] = .string("b")
        object["extra"] = .null
        object["stream"] = nil
        #expect(object.keys == ["model", "messages", "extra"])
        #expect(object["model"] == .string("b"))
    }
}
