import Platform
import Testing

@Suite("HTTP whitespace and millisecond text")
struct HTTPWhitespaceTests {
    @Test(arguments: [
        ("sk-abc", "sk-abc"), ("  sk-abc\t ", "sk-abc"), ("\t\t", ""), ("", ""), ("a b", "a b"),
        // Only HTTP's optional whitespace goes: a no-break space or a newline is part of the value.
        ("\u{00A0}sk\u{00A0}", "\u{00A0}sk\u{00A0}"), (" sk\n", "sk\n"), (" é ", "é"),
    ])
    func trims(_ text: String, _ expected: String) {
        #expect(String(text.trimmingHTTPWhitespace()) == expected)
        #expect(String(text[...].trimmingHTTPWhitespace()) == expected)
    }

    @Test(arguments: [
        (Duration.zero, "0.000"), (.microseconds(7), "0.007"), (.microseconds(1_234), "1.234"),
        (.milliseconds(50), "50.000"), (.seconds(2) + .microseconds(500), "2000.500"), (.nanoseconds(999), "0.000"),
    ])
    func millisecondsText(_ duration: Duration, _ expected: String) {
        #expect(duration.millisecondsText == expected)
    }
}
