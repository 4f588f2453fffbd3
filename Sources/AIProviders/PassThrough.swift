import Foundation
import NIOCore
import Platform
import WireFormats

/// A provider's answer, passed on as it came: the OpenAI-compatible API answers the provider's
/// own body.
public struct ProviderAnswer: Sendable {
    public var body: ByteBuffer
    public var contentType: String?

    public init(body: ByteBuffer, contentType: String?) {
        self.body = body
        self.contentType = contentType
    }
}

/// A multipart field or file to send to a provider as it was received.
public struct ProviderFormPart: Sendable {
    public var name: String
    public var value: ByteBuffer
    public var filename: String?
    public var contentType: String?

    public init(name: String, value: ByteBuffer, filename: String? = nil, contentType: String? = nil) {
        self.name = name
        self.value = value
        self.filename = filename
        self.contentType = contentType
    }
}

/// The OpenAI wire API passed through: bodies go to the provider as the platform prepared them
/// (every field the client sent, the model resolved), answers come back untouched. Failures are
/// the same `DomainError`s as `AIProvider`'s.
public protocol PassThroughProvider: Sendable {
    /// POST `path` (`chat/completions`, `embeddings`, `audio/speech`) with a JSON body.
    func passThrough(_ path: String, json: [UInt8], model: String, maxAnswerBytes: Int) async throws -> ProviderAnswer
    /// POST `chat/completions` with `stream: true`: the data of each Server-Sent Event, up to
    /// `[DONE]`, read from the provider as the reader asks for them. A reader that stops reading
    /// (drops the sequence) ends the provider's request.
    func passThroughStream(json: [UInt8], model: String) async throws -> ProviderEvents
    /// POST `path` (`audio/transcriptions`, `audio/translations`) with a multipart body.
    func passThrough(_ path: String, form parts: [ProviderFormPart], model: String) async throws -> ProviderAnswer
}

extension OpenAICompatibleProvider: PassThroughProvider {
    public func passThrough(_ path: String, json: [UInt8], model: String, maxAnswerBytes: Int) async throws -> ProviderAnswer {
        let answer = try await call(path, body: ByteBuffer(bytes: json), contentType: "application/json", model: model, operation: path) {
            response in try await response.body.collect(upTo: maxAnswerBytes)
        }
        return ProviderAnswer(body: answer.body, contentType: answer.contentType)
    }

    public func passThroughStream(json: [UInt8], model: String) async throws -> ProviderEvents {
        let response = try await execute(
            "chat/completions", body: ByteBuffer(bytes: json), contentType: "application/json", accept: "text/event-stream", model: model,
            operation: "chat stream")
        return ProviderEvents(body: response.body, failures: failures, maxEventBytes: limits.maxStreamEventBytes)
    }

    /// `text` without the spaces and tabs around it (JSON's whitespace; the data of an event is JSON
    /// or `[DONE]`), without Foundation's Unicode-wide trimming on every event.
    static func trimmingJSONWhitespace(_ text: String) -> String {
        let bytes = text.utf8
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) }) else { return "" }
        if first == bytes.startIndex, last == bytes.index(before: bytes.endIndex) { return text }
        return String(text[first...last])
    }

    public func passThrough(_ path: String, form parts: [ProviderFormPart], model: String) async throws -> ProviderAnswer {
        var form = MultipartFormData()
        for part in parts {
            if let filename = part.filename {
                form.addFile(part.name, filename: filename, contentType: part.contentType ?? "application/octet-stream", data: part.value)
            } else {
                form.addField(part.name, String(buffer: part.value))
            }
        }
        let answer = try await call(path, body: form.finished(), contentType: form.contentType, model: model, operation: path) {
            response in try await response.body.collect(upTo: limits.maxJSONBytes)
        }
        return ProviderAnswer(body: answer.body, contentType: answer.contentType)
    }
}

/// The data of a provider's Server-Sent Events, up to `[DONE]`, parsed from its answer's body as
/// the reader pulls: no task of its own and nothing buffered between the socket and the reader,
/// so an event goes on as soon as its bytes are read. A body that ends without `[DONE]` was cut
/// off: that, an event over `maxEventBytes` and a failed read are the provider's failures.
public struct ProviderEvents: AsyncSequence, Sendable {
    public typealias Element = String
    public typealias Failure = any Error

    let body: ProviderResponseBody
    let failures: ProviderFailures
    let maxEventBytes: Int

    public func makeAsyncIterator() -> Iterator {
        Iterator(body: body.makeAsyncIterator(), parser: ServerSentEventParser(maxEventBytes: maxEventBytes), failures: failures)
    }

    public struct Iterator: AsyncIteratorProtocol {
        var body: ProviderResponseBody.Iterator
        var parser: ServerSentEventParser
        let failures: ProviderFailures
        var ready: [String] = []
        var readyIndex = 0
        var done = false

        @concurrent public mutating func next() async throws -> String? {
            while true {
                if readyIndex < ready.count {
                    defer { readyIndex += 1 }
                    return ready[readyIndex]
                }
                if done { return nil }
                ready.removeAll(keepingCapacity: true)
                readyIndex = 0
                let buffer: ByteBuffer?
                do {
                    buffer = try await body.next()
                } catch {
                    throw failures.transport(error, operation: "chat stream")
                }
                do {
                    guard let buffer else {
                        done = true
                        // The reader was cancelled: the body stops, the provider did not fail.
                        try Task.checkCancellation()
                        // The body ended without `[DONE]` on a line of its own: complete only if the
                        // last, unterminated event is `[DONE]` itself. Any other unterminated event
                        // may be cut off mid-JSON: the stream ended early.
                        if let event = parser.finish(), OpenAICompatibleProvider.trimmingJSONWhitespace(event.data) == "[DONE]" { continue }
                        throw Self.endedEarly(failures)
                    }
                    for event in try parser.feed(buffer.readableBytesView) {
                        let data = OpenAICompatibleProvider.trimmingJSONWhitespace(event.data)
                        if data == "[DONE]" {
                            done = true
                            break
                        }
                        if !data.isEmpty { ready.append(data) }
                    }
                } catch is ServerSentEventParser.EventTooLarge {
                    done = true
                    throw DomainError(.upstreamFailure, "the AI provider \(failures.provider.quotedForMessage) sent an answer that is too large")
                }
            }
        }

        static func endedEarly(_ failures: ProviderFailures) -> DomainError {
            DomainError(.upstreamFailure, "the AI provider \(failures.provider.quotedForMessage) ended the stream early")
        }
    }
}
