import Testing
import WireFormats

@Suite struct MultipartFormParserTests {
    private let parser = MultipartFormParser()

    private func parse(_ text: String, boundary: String = "B") throws -> [(MultipartPart, String)] {
        let bytes = Array(text.utf8)
        return try parser.parse(bytes, boundary: boundary).map { ($0, String(decoding: bytes[$0.content], as: UTF8.self)) }
    }

    @Test func readsFieldsAndFiles() throws {
        let body = "preamble\r\n--B\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\nen\r\n"
            + "--B  \r\ncontent-disposition: form-data; filename=\"a \\\"b\\\".wav\"; name=file\r\nContent-Type: audio/wav\r\n\r\nRIFF\r\n-B\r\n"
            + "--B--\r\nepilogue"
        let parts = try parse(body)
        #expect(parts.count == 2)
        #expect(parts[0].0.name == "language" && parts[0].1 == "en" && parts[0].0.filename == nil)
        #expect(parts[1].0.name == "file" && parts[1].0.filename == "a \"b\".wav" && parts[1].0.contentType == "audio/wav")
        #expect(parts[1].1 == "RIFF\r\n-B")
    }

    @Test func contentMayBeEmptyOrBinary() throws {
        var bytes = Array("--B\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n".utf8)
        let binary: [UInt8] = [0x00, 0xFF, 0x0D, 0x0A, 0x2D, 0x2D, 0x41, 0x0D]
        bytes += binary + Array("\r\n--B\r\nContent-Disposition: form-data; name=\"e\"\r\n\r\n\r\n--B--".utf8)
        let parts = try parser.parse(bytes, boundary: "B")
        #expect(Array(bytes[parts[0].content]) == binary)
        #expect(parts[1].content.isEmpty)
    }

    @Test("refuses malformed bodies with an error, never a trap", arguments: [
        "",
        "no boundary at all",
        "--B--",
        "--B\r\n\u{FF}: 1\r\n\r\nabc\r\n--B--\r\n",
        "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated",
        "--B\r\nContent-Disposition: form-data\r\n\r\nx\r\n--B--",
        "--B\r\nContent-Type: text/plain\r\n\r\nx\r\n--B--",
        "--B\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--B--",
        "--B\r\nContent-Disposition: form-data; name=\"a\"; name=\"b\"\r\n\r\nx\r\n--B--",
        "--B\r\nContent-Disposition: form-data; name=\"a\r\n\r\nx\r\n--B--",
        "--B\r\nContent-Disposition: form-data; name=\"a\"\nx: y\r\n\r\nx\r\n--B--",
        "--B\r\nBad Header: y\r\n\r\nx\r\n--B--",
        "--B\r\n: y\r\n\r\nx\r\n--B--",
        // The boundary must not occur inside a part (RFC 2046): a delimiter followed by junk.
        "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--Bxx\r\n--B--",
        "--Bjunk\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--B--",
        "--B\r\nContent-Disposition: form-data; name=\"a\"\r\nX: a\u{00}b\r\n\r\nx\r\n--B--",
        "--B\r\nContent-Disposition: form-data; name=\"a\"\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\nx\r\n--B--",
    ])
    func refusesMalformed(_ text: String) {
        #expect(throws: MultipartSyntaxError.self) { try parse(text) }
    }

    @Test func headerBytesAboveASCIIInNamesAreRefused() {
        // The upload that used to stop the whole process: a part-header name byte ≥ 0x80.
        let bytes: [UInt8] = Array("--B\r\n".utf8) + [0xFF] + Array(": 1\r\n\r\nabc\r\n--B--\r\n".utf8)
        #expect(throws: MultipartSyntaxError.self) { try parser.parse(bytes, boundary: "B") }
        for byte in UInt8(0x80)...UInt8(0xFF) {
            let body: [UInt8] = Array("--B\r\nContent-Dispositio".utf8) + [byte] + Array(": form-data; name=\"a\"\r\n\r\nx\r\n--B--".utf8)
            #expect(throws: MultipartSyntaxError.self) { try parser.parse(body, boundary: "B") }
        }
    }

    @Test func boundsPartsAndHeaders() {
        var limited = MultipartFormParser()
        limited.maxParts = 2
        let part = "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n"
        #expect(throws: MultipartSyntaxError.self) { try limited.parse(Array((part + part + part + "--B--").utf8), boundary: "B") }
        let long = "--B\r\nContent-Disposition: form-data; name=\"a\"\r\nX: " + String(repeating: "y", count: 9000) + "\r\n\r\nx\r\n--B--"
        #expect(throws: MultipartSyntaxError.self) { try parser.parse(Array(long.utf8), boundary: "B") }
        let many = "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n" + String(repeating: "X: y\r\n", count: 20) + "\r\nx\r\n--B--"
        #expect(throws: MultipartSyntaxError.self) { try parser.parse(Array(many.utf8), boundary: "B") }
    }

    @Test func boundaryFromContentType() {
        #expect(MultipartFormParser.boundary(ofContentType: "multipart/form-data; boundary=abc") == "abc")
        #expect(MultipartFormParser.boundary(ofContentType: "Multipart/Form-Data;charset=utf-8; BOUNDARY=\"a b:c\"") == "a b:c")
        #expect(MultipartFormParser.boundary(ofContentType: "multipart/form-data") == nil)
        #expect(MultipartFormParser.boundary(ofContentType: "multipart/mixed; boundary=abc") == nil)
        #expect(MultipartFormParser.boundary(ofContentType: "multipart/form-data; boundary=") == nil)
        #expect(MultipartFormParser.boundary(ofContentType: "multipart/form-data; boundary=" + String(repeating: "a", count: 71)) == nil)
        #expect(MultipartFormParser.boundary(ofContentType: "multipart/form-data; boundary=a\u{00}b") == nil)
        #expect(MultipartFormParser.boundary(ofContentType: "multipart/form-data; boundary=é") == nil)
    }
}
