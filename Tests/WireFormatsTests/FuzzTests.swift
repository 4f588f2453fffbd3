import Foundation
import Testing
import WireFormats

/// Generated inputs, seeded so a failure can be replayed: the parsers must never trap, and what
/// they accept must mean what it says. The coverage-guided fuzzers in fuzz/ go further.
@Suite struct FuzzTests {
    static let seeds: [UInt64] = [1, 2, 3, 0xC0FFEE]

    @Test("JSON: generated documents round-trip; mutations never trap, and what is accepted Foundation reads alike", arguments: seeds)
    func json(seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        for _ in 0..<300 {
            let value = random.jsonValue(depth: 0)
            let bytes = JSONWriter.bytes(value)
            #expect(try JSONParser.parse(bytes) == value)

            var mutated = bytes
            random.mutate(&mutated, alphabet: Array(#"{}[],:"\-+.eE0123456789 tfnul\"#.utf8) + [0x00, 0x0A, 0xC3, 0xA9, 0xFF])
            guard let accepted = try? JSONParser.parse(mutated) else { continue }
            // Foundation is more lenient (it accepts trailing commas, for one): whatever the strict
            // parser accepts, Foundation must read to the same value.
            let foundation = try JSONSerialization.jsonObject(with: Data(mutated), options: [.fragmentsAllowed])
            #expect(Self.same(accepted, foundation), "\(String(decoding: mutated, as: UTF8.self))")
        }
    }

    @Test("multipart: mutations of a valid body never trap; parts stay inside the body", arguments: seeds)
    func multipart(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let parser = MultipartFormParser()
        let valid = Array((
            "--XyZ\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nhello\r\n"
                + "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\nContent-Type: audio/mpeg\r\n\r\nID3\u{0}\u{1}\r\n--XyZ--\r\n"
        ).utf8)
        #expect((try? parser.parse(valid, boundary: "XyZ"))?.count == 2)
        for _ in 0..<2000 {
            var mutated = valid
            random.mutate(&mutated, alphabet: Array("-XyZ\r\n:;=\" ".utf8) + [0x00, 0x7F, 0x80, 0xFF])
            guard let parts = try? parser.parse(mutated, boundary: "XyZ") else { continue }
            for part in parts {
                #expect(part.content.lowerBound >= 0 && part.content.upperBound <= mutated.count)
                #expect(!part.name.isEmpty)
            }
        }
        for _ in 0..<500 {
            _ = try? parser.parse(random.bytes(count: random.int(0..<200)), boundary: "XyZ")
        }
    }

    @Test("Server-Sent Events: any bytes in any chunks give the same events as one chunk", arguments: seeds)
    func serverSentEvents(seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        let alphabet = Array("data: event:id:\r\n\n{}[DONE] é".utf8) + [0x00, 0xFF, 0xC3]
        for _ in 0..<300 {
            let bytes = (0..<random.int(0..<300)).map { _ in alphabet[random.int(0..<alphabet.count)] }
            var whole = ServerSentEventParser(maxEventBytes: 1 << 20)
            var expected = try whole.feed(bytes)
            if let last = whole.finish() { expected.append(last) }

            var pieces = ServerSentEventParser(maxEventBytes: 1 << 20)
            var events: [ServerSentEvent] = []
            var start = 0
            while start < bytes.count {
                let end = min(bytes.count, start + random.int(1..<8))
                events += try pieces.feed(bytes[start..<end])
                start = end
            }
            if let last = pieces.finish() { events.append(last) }
            #expect(events == expected)
        }
    }

    /// Whether Foundation's reading of a document is the strict parser's value.
    static func same(_ value: JSONValue, _ foundation: Any) -> Bool {
        switch value {
        case .null: return foundation is NSNull
        case .bool(let flag): return (foundation as? Bool) == flag
        case .number(let text):
            guard let number = foundation as? NSNumber, let expected = Double(text) else { return false }
            return number.doubleValue == expected || (number.doubleValue.isNaN && expected.isNaN)
        case .string(let text): return foundation as? String == text
        case .array(let items):
            guard let array = foundation as? [Any], array.count == items.count else { return false }
            return zip(items, array).allSatisfy { same($0, $1) }
        case .object(let object):
            guard let dictionary = foundation as? [String: Any], dictionary.count == object.count else { return false }
            return object.members.allSatisfy { member in dictionary[member.key].map { same(member.value, $0) } ?? false }
        }
    }
}

/// SplitMix64: small, fast and the same on every machine.
struct SeededRandom {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func int(_ range: Range<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.count))
    }

    mutating func bytes(count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) }
    }

    /// A few random edits: replace, insert, delete, duplicate a run.
    mutating func mutate(_ bytes: inout [UInt8], alphabet: [UInt8]) {
        for _ in 0..<int(1..<4) {
            let pick = alphabet[int(0..<alphabet.count)]
            switch int(0..<4) {
            case 0 where !bytes.isEmpty: bytes[int(0..<bytes.count)] = pick
            case 1: bytes.insert(pick, at: int(0..<(bytes.count + 1)))
            case 2 where !bytes.isEmpty: bytes.remove(at: int(0..<bytes.count))
            default:
                guard !bytes.isEmpty else { continue }
                let start = int(0..<bytes.count)
                let end = min(bytes.count, start + int(1..<16))
                bytes.insert(contentsOf: bytes[start..<end], at: int(0..<(bytes.count + 1)))
            }
        }
    }

    mutating func jsonValue(depth: Int) -> JSONValue {
        switch int(0..<(depth > 4 ? 4 : 7)) {
        case 0: return .null
        case 1: return .bool(int(0..<2) == 0)
        case 2: return .number(["0", "-1", "3.25", "1e-9", "12345678901234567", "-0.5E+2"][int(0..<6)])
        case 3: return .string(string())
        case 4, 5: return .array((0..<int(0..<5)).map { _ in jsonValue(depth: depth + 1) })
        default:
            var object = JSONObject()
            for _ in 0..<int(0..<5) { object[string()] = jsonValue(depth: depth + 1) }
            return .object(object)
        }
    }

    mutating func string() -> String {
        let pieces = ["a", "é", "😀", "\"", "\\", "\n", "\u{01}", "/", " ", "\u{7F}", "z9"]
        return (0..<int(0..<6)).map { _ in pieces[int(0..<pieces.count)] }.joined()
    }
}
