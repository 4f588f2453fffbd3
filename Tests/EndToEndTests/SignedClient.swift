import AKSKSigning
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// A device of a channel customer: signs each request with its AK/SK pair (cc-auth-v1) and sends
/// it to the gateway.
struct SignedClient: Sendable {
    let port: Int
    let accessKey: String
    let secretKey: String

    /// Signs `body` for `method path` with `Host`, `Content-Type`, a body digest and a nonce unless
    /// told otherwise, then sends it. `tamper` may change headers after signing.
    func send(
        _ method: String, _ path: String, body: [UInt8] = [], contentType: String = "application/json",
        date: Date = Date(), expirationSeconds: Int = 300, digest: Bool = true, nonce: String? = Signer.makeNonce(),
        tamper: (inout [(String, String)]) -> Void = { _ in }
    ) async throws -> HTTPTestClient.Reply {
        let signer = Signer(accessKey: accessKey, secretKey: secretKey)
        let signed = try signer.sign(
            method: method, url: "http://127.0.0.1:\(port)\(path)", headers: [("content-type", contentType)],
            body: body, date: date, expirationSeconds: expirationSeconds, contentSHA256: digest, nonce: nonce
        )
        var headers = signed.headersToAdd.filter { $0.name != "host" }.map { ($0.name, $0.value) }
        tamper(&headers)
        return try await HTTPTestClient(port: port).send(method, path, bytes: body, headers: headers, contentType: contentType)
    }

    func json(_ path: String, _ json: String, nonce: String? = Signer.makeNonce()) async throws -> HTTPTestClient.Reply {
        try await send("POST", path, body: Array(json.utf8), nonce: nonce)
    }

    /// A JSON POST signed with a body digest and a nonce, for reading its answer as it arrives.
    private func signedPost(_ path: String, _ json: String) throws -> HTTPClientRequest {
        let body = Array(json.utf8)
        let signed = try Signer(accessKey: accessKey, secretKey: secretKey).sign(
            method: "POST", url: "http://127.0.0.1:\(port)\(path)", headers: [("content-type", "application/json")],
            body: body, contentSHA256: true, nonce: Signer.makeNonce()
        )
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        for header in signed.headersToAdd where header.name != "host" { request.headers.add(name: header.name, value: header.value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        return request
    }

    /// A signed request whose answer is read as it arrives: the raw Server-Sent Events text.
    func stream(_ path: String, _ json: String) async throws -> (status: Int, contentType: String?, events: [String]) {
        let request = try signedPost(path, json)
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        var text = ""
        for try await part in response.body { text += String(buffer: part) }
        let events = text.components(separatedBy: "\n\n").filter { !$0.isEmpty }
        return (Int(response.status.code), response.headers.first(name: "Content-Type"), events)
    }

    /// Starts a signed streamed request, reads until the first complete event, then hangs up.
    func readFirstEvent(_ path: String, _ json: String) async throws -> String {
        let request = try signedPost(path, json)
        // A client of its own, shut down at once: its connection closes rather than returning to a pool.
        let httpClient = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            let response = try await httpClient.execute(request, timeout: .seconds(30))
            var text = ""
            for try await part in response.body {
                text += String(buffer: part)
                if let end = text.range(of: "\n\n") {
                    try await httpClient.shutdown()
                    return String(text[..<end.lowerBound])
                }
            }
            try await httpClient.shutdown()
            return text
        } catch {
            try? await httpClient.shutdown()
            throw error
        }
    }

    /// `multipart/form-data` with the audio as `file` and the other fields as text.
    static func multipart(file: [UInt8], filename: String, fields: [String: String] = [:]) -> (body: [UInt8], contentType: String) {
        let boundary = "----aisaas-test-\(UUID().uuidString)"
        var body: [UInt8] = []
        for (name, value) in fields.sorted(by: { $0.key < $1.key }) {
            body += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n".utf8)
        }
        body += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(filename)\"\r\nContent-Type: application/octet-stream\r\n\r\n".utf8)
        body += file
        body += Array("\r\n--\(boundary)--\r\n".utf8)
        return (body, "multipart/form-data; boundary=\(boundary)")
    }
}
