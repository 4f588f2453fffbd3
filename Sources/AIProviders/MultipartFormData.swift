import NIOCore

/// A `multipart/form-data` body (RFC 7578) for the transcription endpoint.
struct MultipartFormData {
    let boundary: String
    private(set) var body = ByteBuffer()

    init(boundary: String = "aisaas-" + String((0..<24).map { _ in "0123456789abcdef".randomElement() ?? "0" })) {
        self.boundary = boundary
    }

    var contentType: String { "multipart/form-data; boundary=\(boundary)" }

    mutating func addField(_ name: String, _ value: String) {
        body.writeString("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(Self.quoted(name))\"\r\n\r\n")
        body.writeString(value)
        body.writeString("\r\n")
    }

    mutating func addFile(_ name: String, filename: String, contentType: String, data: ByteBuffer) {
        body.writeString(
            "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(Self.quoted(name))\"; filename=\"\(Self.quoted(filename))\"\r\n"
                + "Content-Type: \(contentType)\r\n\r\n")
        var data = data
        body.writeBuffer(&data)
        body.writeString("\r\n")
    }

    /// The body with its closing delimiter.
    func finished() -> ByteBuffer {
        var result = body
        result.writeString("--\(boundary)--\r\n")
        return result
    }

    /// A user-supplied name cannot break out of its header: quotes, backslashes and line breaks
    /// are replaced.
    private static func quoted(_ text: String) -> String {
        String(text.unicodeScalars.map { scalar -> Character in
            switch scalar {
            case "\"", "\\", "\r", "\n": return "_"
            default: return Character(scalar)
            }
        })
    }
}
