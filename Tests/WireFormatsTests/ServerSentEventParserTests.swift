import Testing
import WireFormats

@Suite struct ServerSentEventParserTests {
    private func parse(_ chunks: [[UInt8]]) throws -> [ServerSentEvent] {
        var parser = ServerSentEventParser()
        var events: [ServerSentEvent] = []
        for chunk in chunks { events += try parser.feed(chunk) }
        if let last = parser.finish() { events.append(last) }
        return events
    }

    private let stream = ": comment\r\nevent: message\r\ndata: {\"a\":1}\r\n\r\ndata: first\ndata: second\n\nid: 7\nretry: 10\ndata:no-space\r\rdata: é✓\n\ndata: [DONE]\n\n"

    private var expected: [ServerSentEvent] {
        [
            ServerSentEvent(event: "message", data: "{\"a\":1}"),
            ServerSentEvent(event: nil, data: "first\nsecond"),
            ServerSentEvent(event: nil, data: "no-space"),
            ServerSentEvent(event: nil, data: "é✓"),
            ServerSentEvent(event: nil, data: "[DONE]"),
        ]
    }

    @Test func parsesWholeStream() throws {
        #expect(try parse([Array(stream.utf8)]) == expected)
    }

    @Test func chunkBoundariesAnywhere() throws {
        let bytes = Array(stream.utf8)
        // Every cut point, including inside "\r\n" and inside multi-byte characters.
        for cut in 1..<bytes.count {
            #expect(try parse([Array(bytes[..<cut]), Array(bytes[cut...])]) == expected, "cut at \(cut)")
        }
        #expect(try parse(bytes.map { [$0] }) == expected)
    }

    @Test func lastEventWithoutBlankLineIsKept() throws {
        #expect(try parse([Array("data: tail".utf8)]) == [ServerSentEvent(event: nil, data: "tail")])
        #expect(try parse([Array(": only a comment\n\n\n".utf8)]).isEmpty)
    }

    @Test func oversizedEventIsRefused() {
        var parser = ServerSentEventParser(maxEventBytes: 16)
        #expect(throws: ServerSentEventParser.EventTooLarge.self) {
            _ = try parser.feed(Array(("data: " + String(repeating: "x", count: 64)).utf8))
        }
    }
}
