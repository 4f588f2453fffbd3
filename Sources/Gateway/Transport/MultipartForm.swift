import NIOCore
import WireFormats

/// A `multipart/form-data` body, parsed completely: its parts by field name.
struct MultipartForm {
    struct Part {
        var name: String
        var filename: String?
        var contentType: String?
        var body: ByteBuffer
    }

    private(set) var parts: [Part] = []

    func part(named name: String) -> Part? { parts.first { $0.name == name } }

    /// A text field, decoded as UTF-8 (nil if absent; 400 if it is not text).
    func text(_ name: String) throws -> String? {
        guard let part = part(named: name) else { return nil }
        guard let text = String(validating: part.body.readableBytesView, as: UTF8.self) else {
            throw APIError.badRequest("form field \(name) is not valid UTF-8 text")
        }
        return text
    }

    /// Parses `buffer` as the body of a request with `contentType`. 400 for anything that is not a
    /// complete, well-formed multipart/form-data body.
    init(contentType: String?, buffer: ByteBuffer, parser: MultipartFormParser = MultipartFormParser()) throws {
        guard let contentType, let boundary = MultipartFormParser.boundary(ofContentType: contentType) else {
            throw APIError.badRequest("the body must be multipart/form-data with a boundary")
        }
        let parsed: [MultipartPart]
        do {
            parsed = try buffer.withUnsafeReadableBytes { try parser.parse($0, boundary: boundary) }
        } catch let error as MultipartSyntaxError {
            throw APIError.badRequest("the multipart body is malformed: \(error.reason)")
        }
        parts = parsed.map { part in
            Part(
                name: part.name, filename: part.filename, contentType: part.contentType,
                body: buffer.getSlice(at: buffer.readerIndex + part.content.lowerBound, length: part.content.count) ?? ByteBuffer()
            )
        }
    }
}
