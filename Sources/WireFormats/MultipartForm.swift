#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One part of a `multipart/form-data` body (RFC 7578): its field name, the file name and content
/// type it declared, and where its content lies in the body.
public struct MultipartPart: Sendable, Equatable {
    public var name: String
    public var filename: String?
    public var contentType: String?
    /// Offsets into the parsed bytes.
    public var content: Range<Int>
}

/// Why a body is not the `multipart/form-data` it claims to be. Never echoes the input.
public struct MultipartSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }

    init(_ reason: String) {
        self.reason = reason
    }
}

/// A parser for complete `multipart/form-data` bodies, written for untrusted input: every byte
/// is checked against the grammar (RFC 2046 §5.1.1, RFC 7578, header fields as in RFC 9110),
/// the number and size of parts' headers are bounded, and no input can trap or loop.
public struct MultipartFormParser: Sendable {
    /// At most this many parts.
    public var maxParts: Int = 32
    /// At most this many header lines in one part.
    public var maxHeadersPerPart: Int = 16
    /// At most this many bytes of header lines in one part.
    public var maxHeaderBytesPerPart: Int = 8 << 10

    public init() {}

    /// The boundary of a `multipart/form-data` content type, or nil if it is not one with a valid
    /// boundary (1–70 characters of RFC 2046's `bchars`, not ending with a space).
    public static func boundary(ofContentType contentType: String) -> String? {
        let pieces = contentType.split(separator: ";", omittingEmptySubsequences: false)
        guard let type = pieces.first, trimmed(type).lowercased() == "multipart/form-data" else { return nil }
        for piece in pieces.dropFirst() {
            guard let equals = piece.firstIndex(of: "=") else { continue }
            guard trimmed(piece[..<equals]).lowercased() == "boundary" else { continue }
            var value = trimmed(piece[piece.index(after: equals)...])
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            let bytes = Array(value.utf8)
            guard (1...70).contains(bytes.count), bytes.allSatisfy(isBoundaryCharacter), bytes.last != 0x20 else { return nil }
            return value
        }
        return nil
    }

    public func parse(_ body: some Collection<UInt8>, boundary: String) throws(MultipartSyntaxError) -> [MultipartPart] {
        let result: Result<[MultipartPart], MultipartSyntaxError>? = body.withContiguousStorageIfAvailable { buffer in
            Result { () throws(MultipartSyntaxError) in try parse(UnsafeRawBufferPointer(buffer), boundary: boundary) }
        }
        if let result { return try result.get() }
        let copy = Array(body)
        return try copy.withUnsafeBytes { raw in Result { () throws(MultipartSyntaxError) in try parse(raw, boundary: boundary) } }.get()
    }

    public func parse(_ body: UnsafeRawBufferPointer, boundary: String) throws(MultipartSyntaxError) -> [MultipartPart] {
        let boundaryBytes = Array(boundary.utf8)
        guard (1...70).contains(boundaryBytes.count), boundaryBytes.allSatisfy(Self.isBoundaryCharacter) else {
            throw MultipartSyntaxError("the multipart boundary is invalid")
        }
        // The first delimiter may open the body; every later one follows a CRLF.
        let dashBoundary = [UInt8(ascii: "-"), UInt8(ascii: "-")] + boundaryBytes
        let delimiter = [0x0D, 0x0A] + dashBoundary
        var position: Int
        if Self.hasPrefix(body, dashBoundary, at: 0) {
            position = dashBoundary.count
        } else if let found = Self.find(delimiter, in: body, from: 0) {
            position = found + delimiter.count
        } else {
            throw MultipartSyntaxError("the multipart body has no boundary line")
        }

        var parts: [MultipartPart] = []
        while true {
            // After a delimiter: "--" closes the body; otherwise padding and CRLF open a part.
            if Self.hasPrefix(body, [UInt8(ascii: "-"), UInt8(ascii: "-")], at: position) { return try finish(parts) }
            while position < body.count, body[position] == 0x20 || body[position] == 0x09 { position += 1 }
            guard Self.hasPrefix(body, [0x0D, 0x0A], at: position) else {
                throw MultipartSyntaxError("a multipart boundary line must end with CRLF")
            }
            position += 2
            guard parts.count < maxParts else { throw MultipartSyntaxError("the multipart body has more than \(maxParts) parts") }
            let (headers, contentStart) = try readHeaders(body, from: position)
            guard let contentEnd = Self.find(delimiter, in: body, from: contentStart) else {
                throw MultipartSyntaxError("the multipart body ends inside a part")
            }
            parts.append(try part(headers: headers, content: contentStart..<contentEnd))
            position = contentEnd + delimiter.count
        }
    }

    private func finish(_ parts: [MultipartPart]) throws(MultipartSyntaxError) -> [MultipartPart] {
        guard !parts.isEmpty else { throw MultipartSyntaxError("the multipart body has no parts") }
        return parts
    }

    /// A part's header lines up to the blank line, and where its content starts.
    private func readHeaders(_ body: UnsafeRawBufferPointer, from start: Int) throws(MultipartSyntaxError) -> ([(name: String, value: String)], Int) {
        var headers: [(name: String, value: String)] = []
        var position = start
        while true {
            guard position - start <= maxHeaderBytesPerPart else {
                throw MultipartSyntaxError("a multipart part's headers are longer than \(maxHeaderBytesPerPart) bytes")
            }
            if Self.hasPrefix(body, [0x0D, 0x0A], at: position) { return (headers, position + 2) }
            guard headers.count < maxHeadersPerPart else {
                throw MultipartSyntaxError("a multipart part has more than \(maxHeadersPerPart) headers")
            }
            let lineStart = position
            while position < body.count, Self.isTokenCharacter(body[position]) { position += 1 }
            guard position > lineStart, position < body.count, body[position] == UInt8(ascii: ":") else {
                throw MultipartSyntaxError("a multipart part has a malformed header line")
            }
            let nameEnd = position
            position += 1
            let valueStart = position
            while position < body.count, body[position] != 0x0D, body[position] != 0x0A {
                // Field values are visible characters, spaces, tabs and non-ASCII bytes; no NUL or
                // other control characters.
                let byte = body[position]
                guard byte >= 0x20 || byte == 0x09, byte != 0x7F else {
                    throw MultipartSyntaxError("a multipart header contains a control character")
                }
                position += 1
                guard position - start <= maxHeaderBytesPerPart else {
                    throw MultipartSyntaxError("a multipart part's headers are longer than \(maxHeaderBytesPerPart) bytes")
                }
            }
            guard Self.hasPrefix(body, [0x0D, 0x0A], at: position) else {
                throw MultipartSyntaxError("a multipart header line must end with CRLF")
            }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: body[lineStart..<nameEnd]), as: UTF8.self)
            guard let value = String(validating: UnsafeRawBufferPointer(rebasing: body[valueStart..<position]), as: UTF8.self) else {
                throw MultipartSyntaxError("a multipart header is not valid UTF-8")
            }
            headers.append((name.lowercased(), Self.trimmed(value[...])))
            position += 2
        }
    }

    private func part(headers: [(name: String, value: String)], content: Range<Int>) throws(MultipartSyntaxError) -> MultipartPart {
        let dispositions = headers.filter { $0.name == "content-disposition" }
        guard dispositions.count == 1, let disposition = dispositions.first?.value else {
            throw MultipartSyntaxError("every multipart part needs exactly one Content-Disposition header")
        }
        let parameters = try Self.dispositionParameters(disposition)
        guard let name = parameters.value["name"], !name.isEmpty else {
            throw MultipartSyntaxError("every multipart part needs a Content-Disposition name")
        }
        guard parameters.type == "form-data" else { throw MultipartSyntaxError("a multipart part's disposition must be form-data") }
        let types = headers.filter { $0.name == "content-type" }
        guard types.count <= 1 else { throw MultipartSyntaxError("a multipart part has more than one Content-Type") }
        return MultipartPart(name: name, filename: parameters.value["filename"], contentType: types.first?.value, content: content)
    }

    /// `form-data; name="file"; filename="a.wav"`: the disposition type and its parameters (names
    /// lower-cased; quoted strings unquoted, backslash escapes resolved).
    static func dispositionParameters(_ header: String) throws(MultipartSyntaxError) -> (type: String, value: [String: String]) {
        var scalars = Substring(header).unicodeScalars[...]
        func skipSpaces() { while let first = scalars.first, first == " " || first == "\t" { scalars.removeFirst() } }
        func token() -> String {
            var text = String.UnicodeScalarView()
            while let first = scalars.first, first.isASCII, isTokenCharacter(UInt8(first.value)) {
                text.append(first)
                scalars.removeFirst()
            }
            return String(text)
        }
        skipSpaces()
        let type = token().lowercased()
        guard !type.isEmpty else { throw MultipartSyntaxError("a Content-Disposition header has no type") }
        var parameters: [String: String] = [:]
        while true {
            skipSpaces()
            guard let first = scalars.first else { return (type, parameters) }
            guard first == ";" else { throw MultipartSyntaxError("a Content-Disposition header is malformed") }
            scalars.removeFirst()
            skipSpaces()
            if scalars.isEmpty { return (type, parameters) }
            let name = token().lowercased()
            skipSpaces()
            guard !name.isEmpty, scalars.first == "=" else { throw MultipartSyntaxError("a Content-Disposition parameter is malformed") }
            scalars.removeFirst()
            skipSpaces()
            var value = String.UnicodeScalarView()
            if scalars.first == "\"" {
                scalars.removeFirst()
                var closed = false
                while let next = scalars.first {
                    scalars.removeFirst()
                    if next == "\"" {
                        closed = true
                        break
                    }
                    if next == "\\", let escaped = scalars.first {
                        scalars.removeFirst()
                        value.append(escaped)
                    } else {
                        value.append(next)
                    }
                }
                guard closed else { throw MultipartSyntaxError("a Content-Disposition parameter has an unterminated quoted value") }
            } else {
                // Unquoted: up to the next ';' (browsers send UTF-8 file names this way too).
                while let next = scalars.first, next != ";" {
                    value.append(next)
                    scalars.removeFirst()
                }
                while let last = value.last, last == " " || last == "\t" { value.removeLast() }
            }
            guard parameters[name] == nil else { throw MultipartSyntaxError("a Content-Disposition parameter is given twice") }
            parameters[name] = String(value)
        }
    }

    // MARK: - Bytes

    static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    static func isBoundaryCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "'()+_,-./:=? ".utf8.contains(byte)
        }
    }

    static func trimmed(_ text: Substring) -> String {
        var text = text
        while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" { text.removeLast() }
        return String(text)
    }

    static func hasPrefix(_ body: UnsafeRawBufferPointer, _ prefix: [UInt8], at position: Int) -> Bool {
        guard position >= 0, body.count - position >= prefix.count else { return false }
        for (offset, byte) in prefix.enumerated() where body[position + offset] != byte { return false }
        return true
    }

    /// The first offset at or after `start` where `needle` occurs. memchr finds each candidate
    /// first byte: audio uploads are up to 25 MiB.
    static func find(_ needle: [UInt8], in body: UnsafeRawBufferPointer, from start: Int) -> Int? {
        guard let first = needle.first, start >= 0, let base = body.baseAddress else { return nil }
        var position = start
        let last = body.count - needle.count
        while position <= last {
            guard let hit = memchr(base + position, Int32(first), last - position + 1) else { return nil }
            position = base.distance(to: UnsafeRawPointer(hit))
            if hasPrefix(body, needle, at: position) { return position }
            position += 1
        }
        return nil
    }
}
