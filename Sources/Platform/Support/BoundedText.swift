extension String {
    /// `self` cut to at most `maxScalars` Unicode scalars, with `…` where it was cut, and control
    /// characters shown as `?`: safe to put in an error message, a gRPC status or a log line
    /// whatever a client sent.
    public func bounded(toScalars maxScalars: Int = 64) -> String {
        var result = String.UnicodeScalarView()
        for (index, scalar) in unicodeScalars.enumerated() {
            if index == maxScalars {
                result.append("…")
                break
            }
            result.append(scalar.properties.generalCategory == .control ? "?" : scalar)
        }
        return String(result)
    }

    /// `'value'` bounded as above, for naming what a client sent in a message.
    public var quotedForMessage: String { "'" + bounded() + "'" }

    /// At most `maxBytes` bytes of UTF-8, cut at a character boundary, with `…` where it was cut.
    public func truncated(toUTF8Bytes maxBytes: Int) -> String {
        guard utf8.count > maxBytes else { return self }
        var result = ""
        var used = 0
        for character in self {
            let size = character.utf8.count
            if used + size > maxBytes - 3 { break }
            result.append(character)
            used += size
        }
        return result + "…"
    }
}
