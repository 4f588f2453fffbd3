import Foundation
import Logging
import Platform
import Synchronization
import Testing

private final class Lines: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}

@Suite("log lines")
struct LogHandlerTests {
    private func logger(_ format: LogFormat, _ lines: Lines) -> Logger {
        Logger(label: "test") { label in
            PlatformLogHandler(label: label, level: .debug, format: format) { lines.append($0) }
        }
    }

    @Test("a newline or escape in a message or a value cannot make a second line or a second field")
    func textEscapes() {
        let lines = Lines()
        let logger = logger(.text, lines)
        let forged = "abc\n2026-01-01T00:00:00Z critical gateway : forged line\u{1B}[31m"
        logger.info("rpc failed: \(forged)", metadata: ["chat-model-id": "\(forged)", "plain": "value", "spaced": "a b=c \"q\""])
        let line = try! #require(lines.all.first)
        #expect(line.hasSuffix("\n"))
        #expect(line.dropLast().split(separator: "\n").count == 1, "\(line)")
        #expect(line.contains("chat-model-id=\"abc\\n2026-01-01T00:00:00Z critical gateway : forged line\\u{1b}[31m\""))
        #expect(line.contains(" plain=value "))
        #expect(line.contains(#"spaced="a b=c \"q\"""#))
        #expect(!line.contains("\u{1B}"))
    }

    @Test("JSON lines are one object each, with the request's fields by name")
    func jsonLines() throws {
        let lines = Lines()
        let logger = logger(.json, lines)
        logger.warning("line one\nline two \"quoted\"", metadata: ["request-id": "r-1", "app": "gateway", "user-id": "u-9"])
        let line = try #require(lines.all.first)
        #expect(line.dropLast().split(separator: "\n").count == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
        #expect(object["message"] == "line one\nline two \"quoted\"")
        #expect(object["level"] == "warning" && object["component"] == "gateway")
        #expect(object["request_id"] == "r-1" && object["user_id"] == "u-9")
        #expect(object["time"]?.hasSuffix("Z") == true)
    }
}
