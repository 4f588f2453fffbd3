import AsyncHTTPClient
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
    /// POST `chat/completions` with `stream: true`: the data of each Server-Sent Event, up to `[DONE]`.
    func passThroughStream(json: [UInt8], model: String) async throws -> AsyncThrowingStream<String, any Error>
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

    public func passThroughStream(json: [UInt8], model: String) async throws -> AsyncThrowingStream<String, any Error> {
        var http = makeRequest("chat/completions", body: ByteBuffer(bytes: json), contentType: "application/json")
        http.headers.add(name: "Accept", value: "text/event-stream")
        let response = try await execute(http, model: model, operation: "chat stream")
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: String.self)
        let failures = self.failures
        let maxEventBytes = limits.maxStreamEventBytes
        let task = Task.onCurrentLoop {
            var parser = ServerSentEventParser(maxEventBytes: maxEventBytes)
            do {
                for try await buffer in response.body {
                    for event in try parser.feed(buffer.readableBytesView) {
                        let data = event.data.trimmingCharacters(in: .whitespaces)
                        if data == "[DONE]" {
                            continuation.finish()
                            return
                        }
                        if !data.isEmpty { continuation.yield(data) }
                    }
                }
                if let event = parser.finish(), event.data != "[DONE]", !event.data.isEmpty { continuation.yield(event.data) }
                // A stream that ends without [DONE] was cut off.
                throw DomainError(.upstreamFailure, "the AI provider \(failures.provider.quotedForMessage) ended the stream early")
            } catch is ServerSentEventParser.EventTooLarge {
                continuation.finish(throwing: DomainError(.upstreamFailure, "the AI provider \(failures.provider.quotedForMessage) sent an answer that is too large"))
            } catch {
                continuation.finish(throwing: failures.transport(error, operation: "chat stream"))
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
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
