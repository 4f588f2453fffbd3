import Foundation
import MultipartKit
import NIOCore

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
    /// complete multipart/form-data body.
    init(contentType: String?, buffer: ByteBuffer) throws {
        guard let contentType, let boundary = Self.boundary(contentType) else {
            throw APIError.badRequest("the body must be multipart/form-data with a boundary")
        }
        var current: (headers: [(String, String)], body: ByteBuffer) = ([], ByteBuffer())
        var completed: [Part] = []
        var malformed = false
        let parser = MultipartParser(boundary: boundary)
        parser.onHeader = { name, value in current.headers.append((name, value)) }
        parser.onBody = { chunk in current.body.writeBuffer(&chunk) }
        parser.onPartComplete = {
            let disposition = current.headers.first { $0.0.lowercased() == "content-disposition" }?.1
            let parameters = disposition.map(Self.dispositionParameters) ?? [:]
            if let name = parameters["name"] {
                completed.append(Part(
                    name: name, filename: parameters["filename"],
                    contentType: current.headers.first { $0.0.lowercased() == "content-type" }?.1,
                    body: current.body
                ))
            } else {
                malformed = true
            }
            current = ([], ByteBuffer())
        }
        do {
            try parser.execute(buffer)
        } catch {
            throw APIError.badRequest("the multipart body is malformed")
        }
        if malformed || completed.isEmpty {
            throw APIError.badRequest("the multipart body is malformed: every part needs a Content-Disposition name")
        }
        parts = completed
    }

    static func boundary(_ contentType: String) -> String? {
        let pieces = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard pieces.first?.lowercased() == "multipart/form-data" else { return nil }
        for piece in pieces.dropFirst() {
            let pair = piece.split(separator: "=", maxSplits: 1).map(String.init)
            if pair.count == 2, pair[0].lowercased() == "boundary" {
                let value = pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                return (1...70).contains(value.utf8.count) ? value : nil
            }
        }
        return nil
    }

    /// `form-data; name="file"; filename="a.wav"` → ["name": "file", "filename": "a.wav"].
    static func dispositionParameters(_ value: String) -> [String: String] {
        var result: [String: String] = [:]
        for piece in value.split(separator: ";").dropFirst() {
            let pair = piece.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2 else { continue }
            var text = pair[1]
            if text.count >= 2, text.hasPrefix("\""), text.hasSuffix("\"") { text = String(text.dropFirst().dropLast()) }
            result[pair[0].lowercased()] = text
        }
        return result
    }
}
