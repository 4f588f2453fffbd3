import AKSKSigning
import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore

/// The access key / secret key pair a client command signs with.
struct KeyOptions: ParsableArguments {
    @Option(help: "Access key (default: AISAAS_ACCESS_KEY).")
    var accessKey: String?

    @Option(help: "Secret key (default: AISAAS_SECRET_KEY). Prefer the variable: options show in the process list.")
    var secretKey: String?

    @Option(help: "Seconds the signature stays valid.")
    var expiration: Int = 300

    func signer(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Signer {
        guard let accessKey = accessKey ?? environment["AISAAS_ACCESS_KEY"], !accessKey.isEmpty else {
            throw ValidationError("give --access-key or set AISAAS_ACCESS_KEY")
        }
        guard let secretKey = secretKey ?? environment["AISAAS_SECRET_KEY"], !secretKey.isEmpty else {
            throw ValidationError("give --secret-key or set AISAAS_SECRET_KEY")
        }
        return Signer(accessKey: accessKey, secretKey: secretKey)
    }

    func validate() throws {
        // The gateway refuses signatures valid for longer than 7 days.
        guard (1...7 * 86_400).contains(expiration) else {
            throw ValidationError("--expiration must be 1 to 604800 seconds (7 days), got \(expiration)")
        }
    }
}

/// `aisaas sign`: the x-authorization value of a request, for curl and friends.
public struct SignCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "sign",
        abstract: "Print the cc-auth-v1 x-authorization value for a request.",
        discussion: """
            Every --header is signed, and so is host (from --header 'Host: …' or an absolute --url). \
            With --content-sha256 or --nonce the request must also carry x-cc-content-sha256 / \
            x-cc-nonce: --print-headers prints every header to add as 'name: value' lines. Example: \
            curl -H "x-authorization: $(aisaas sign --method GET --url http://127.0.0.1:9000/x)" http://127.0.0.1:9000/x
            """
    )

    @Option(help: "HTTP method.")
    var method: String = "GET"

    @Option(help: "The URL: http(s)://host[:port]/path?query, or /path?query with a Host header.")
    var url: String

    @Option(name: .customLong("header"), help: "A header to sign, as 'Name: value' (repeatable).")
    var headers: [String] = []

    @Option(help: "The request body, for --content-sha256.")
    var data: String?

    @Option(help: "A file holding the request body, for --content-sha256.")
    var dataFile: String?

    @Flag(help: "Sign x-cc-content-sha256, the SHA-256 of the body (empty without --data / --data-file).")
    var contentSha256 = false

    @Flag(help: "Sign a fresh random x-cc-nonce.")
    var nonce = false

    @Flag(help: "Print every header to add as 'name: value' lines instead of the x-authorization value alone.")
    var printHeaders = false

    @Option(help: "Sign as of this time, yyyy-mm-ddThh:mm:ssZ (default: now).")
    var timestamp: String?

    @OptionGroup var keys: KeyOptions

    public init() {}

    public func validate() throws {
        if data != nil && dataFile != nil { throw ValidationError("give --data or --data-file, not both") }
        // An HTTP method is a token: letters only here, as every method the API has.
        if method.isEmpty || !method.allSatisfy({ $0.isASCII && $0.isLetter }) {
            throw ValidationError("--method must be an HTTP method such as GET or POST, got '\(method)'")
        }
        for header in headers where header.contains(where: { $0 == "\r" || $0 == "\n" }) {
            throw ValidationError("--header must be one line, got '\(header.debugDescription)'")
        }
        if let timestamp, CCAuthTimestamp.parse(timestamp) == nil {
            throw ValidationError("--timestamp must be yyyy-mm-ddThh:mm:ssZ")
        }
    }

    public func run() async throws {
        let (output, hint) = try render(signer: keys.signer(), now: Date())
        print(output)
        if let hint { FileHandle.standardError.write(Data((hint + "\n").utf8)) }
    }

    /// What `run` prints on standard output, and a reminder for standard error if the request
    /// needs headers besides x-authorization that were not printed.
    func render(signer: Signer, now: Date) throws -> (output: String, hint: String?) {
        var parsed: [(name: String, value: String)] = []
        for header in headers {
            guard let colon = header.firstIndex(of: ":"), colon != header.startIndex else {
                throw ValidationError("--header must be 'Name: value', got '\(header)'")
            }
            parsed.append((String(header[..<colon]), String(header[header.index(after: colon)...])))
        }
        var body: [UInt8]?
        if let data { body = Array(data.utf8) }
        if let dataFile { body = try readFile(dataFile) }
        let date = timestamp.flatMap(CCAuthTimestamp.parse) ?? now
        let signed = try signOrExplain {
            try signer.sign(
                method: method.uppercased(), url: url, headers: parsed, body: body, date: date,
                expirationSeconds: keys.expiration, contentSHA256: contentSha256, nonce: nonce ? Signer.makeNonce() : nil
            )
        }
        let lines = signed.headersToAdd.map { "\($0.name): \($0.value)" }
        if printHeaders { return (lines.joined(separator: "\n"), nil) }
        let extra = lines.dropFirst().filter { !$0.hasPrefix("host:") }
        let hint = extra.isEmpty ? nil : "also send:\n" + extra.joined(separator: "\n")
        return (signed.authorization, hint)
    }
}

/// `aisaas invoke chat|stt|tts`: calls the AI endpoints, signing each request (with content
/// digest and nonce).
public struct InvokeCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "invoke",
        abstract: "Call the AI endpoints with a signed request.",
        subcommands: [InvokeChat.self, InvokeSTT.self, InvokeTTS.self]
    )

    public init() {}
}

/// Options every `invoke` subcommand takes.
struct InvokeOptions: ParsableArguments {
    @Option(help: "The gateway's base URL.")
    var baseURL: String = "http://127.0.0.1:9000"

    @Option(help: "Seconds to wait for the whole answer.")
    var timeout: Int = 300

    @OptionGroup var keys: KeyOptions

    /// Sends a signed POST of `body` to `path` and returns the response.
    func post(_ path: String, contentType: String, body: [UInt8]) async throws -> HTTPClientResponse {
        let url = baseURL.trimmingSuffix("/") + path
        let signed = try signOrExplain {
            try keys.signer().sign(
                method: "POST", url: url, body: body, expirationSeconds: keys.expiration,
                contentSHA256: true, nonce: Signer.makeNonce()
            )
        }
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "content-type", value: contentType)
        for header in signed.headersToAdd { request.headers.add(name: header.name, value: header.value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        return try await HTTPClient.shared.execute(request, timeout: .seconds(Int64(timeout)))
    }

    /// The `data` of a success envelope; otherwise prints the error body and exits 1.
    func envelopeData(_ response: HTTPClientResponse) async throws -> Any? {
        let bytes = try await collect(response)
        guard response.status == .ok,
            let envelope = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            throw failure(response, bytes)
        }
        return envelope["data"]
    }
}

struct InvokeChat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat", abstract: "POST /ai/invoke/chat_completion and print the answer."
    )

    @Option(help: "The question.")
    var question: String

    @Option(help: "A chat model of yours to answer with.")
    var chatModelId: String?

    @Flag(help: "Stream the answer: print each server-sent event's data as it arrives.")
    var stream = false

    @OptionGroup var options: InvokeOptions

    func run() async throws {
        var payload: [String: Any] = ["question": question]
        if let chatModelId { payload["chatModelId"] = chatModelId }
        if stream { payload["stream"] = true }
        let body = try JSONSerialization.data(withJSONObject: payload)
        let response = try await options.post("/ai/invoke/chat_completion", contentType: "application/json", body: Array(body))
        if !stream {
            let data = try await options.envelopeData(response) as? [String: Any]
            let choices = data?["choices"] as? [[String: Any]] ?? []
            let message = choices.first?["message"] as? [String: Any]
            print(message?["content"] as? String ?? "")
            return
        }
        guard response.status == .ok else { throw failure(response, try await collect(response)) }
        var pending: [UInt8] = []
        var event = "message"
        for try await chunk in response.body {
            pending += chunk.readableBytesView
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[..<newline], as: UTF8.self).trimmingSuffix("\r")
                pending.removeSubrange(...newline)
                if line.isEmpty { event = "message"; continue }
                if line.hasPrefix("event:") { event = line.dropFirst(6).trimmingCharacters(in: .whitespaces); continue }
                guard line.hasPrefix("data:") else { continue }
                let data = line.dropFirst(5).trimmingCharacters(in: .whitespaces)
                if event == "error" {
                    FileHandle.standardError.write(Data((data + "\n").utf8))
                    throw ExitCode.failure
                }
                if data == "[DONE]" { return }
                // Unbuffered, so each piece shows as soon as it arrives.
                FileHandle.standardOutput.write(Data((data + "\n").utf8))
            }
        }
    }
}

struct InvokeSTT: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stt", abstract: "POST an audio file to /ai/invoke/stt and print the text."
    )

    @Option(help: "The audio file (mp3, mp4, mpeg, mpga, m4a, wav or webm).")
    var file: String

    @Option(help: "The spoken language, an ISO-639-1 code such as en.")
    var language: String?

    @Option(help: "A prompt to guide the transcription.")
    var prompt: String?

    @OptionGroup var options: InvokeOptions

    func run() async throws {
        let boundary = "aisaas-" + Signer.makeNonce()
        var fields: [(name: String, value: String)] = []
        if let language { fields.append(("language", language)) }
        if let prompt { fields.append(("prompt", prompt)) }
        let filename = URL(fileURLWithPath: file).lastPathComponent
        let body = multipartBody(boundary: boundary, fields: fields, fileField: "file", filename: filename, file: try readFile(file))
        let response = try await options.post("/ai/invoke/stt", contentType: "multipart/form-data; boundary=\(boundary)", body: body)
        let data = try await options.envelopeData(response) as? [String: Any]
        print(data?["text"] as? String ?? "")
    }
}

struct InvokeTTS: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tts", abstract: "POST text to /ai/invoke/tts and save the audio."
    )

    @Option(help: "The text to speak.")
    var text: String

    @Option(help: "The voice.")
    var voice: String?

    @Option(help: "The audio format: mp3, opus, aac, flac, wav or pcm.")
    var format: String?

    @Option(help: "Where to write the audio.")
    var output: String

    @OptionGroup var options: InvokeOptions

    func run() async throws {
        var payload: [String: Any] = ["text": text]
        if let voice { payload["voice"] = voice }
        if let format { payload["format"] = format }
        let body = try JSONSerialization.data(withJSONObject: payload)
        let response = try await options.post("/ai/invoke/tts", contentType: "application/json", body: Array(body))
        let bytes = try await collect(response)
        guard response.status == .ok else { throw failure(response, bytes) }
        try Data(bytes).write(to: URL(fileURLWithPath: output))
        print("wrote \(bytes.count) bytes to \(output)")
    }
}

// MARK: - Helpers

/// A multipart/form-data body: text fields, then one file.
func multipartBody(boundary: String, fields: [(name: String, value: String)], fileField: String, filename: String, file: [UInt8]) -> [UInt8] {
    var body: [UInt8] = []
    func append(_ text: String) { body += Array(text.utf8) }
    for field in fields {
        append("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(field.name)\"\r\n\r\n\(field.value)\r\n")
    }
    let quoted = filename.replacingOccurrences(of: "\"", with: "%22").replacingOccurrences(of: "\r", with: "").replacingOccurrences(of: "\n", with: "")
    append("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(fileField)\"; filename=\"\(quoted)\"\r\n")
    append("Content-Type: application/octet-stream\r\n\r\n")
    body += file
    append("\r\n--\(boundary)--\r\n")
    return body
}

/// Runs a signing step, turning the library's error into a command-line message.
func signOrExplain(_ sign: () throws -> Signer.Signed) throws -> Signer.Signed {
    do {
        return try sign()
    } catch let error as CCAuthV1Error {
        throw ValidationError("cannot sign: \(error)")
    }
}

func readFile(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw ValidationError("cannot read '\(path)'")
    }
    return Array(data)
}

private func collect(_ response: HTTPClientResponse) async throws -> [UInt8] {
    var buffer = try await response.body.collect(upTo: 64 << 20)
    return buffer.readBytes(length: buffer.readableBytes) ?? []
}

/// Prints an error answer on standard error; throw the result to exit with status 1.
private func failure(_ response: HTTPClientResponse, _ bytes: [UInt8]) -> ExitCode {
    FileHandle.standardError.write(Data("HTTP \(response.status.code)\n".utf8) + Data(bytes) + Data("\n".utf8))
    return ExitCode.failure
}

extension String {
    fileprivate func trimmingSuffix(_ suffix: String) -> String {
        var text = self
        while text.hasSuffix(suffix) { text = String(text.dropLast(suffix.count)) }
        return text
    }
}
