import AISaaSProtos
import Foundation
import WireFormats
import GRPCCore
import HTTPTypes
import Hummingbird
import NIOCore
import Platform
import Synchronization

/// `/ai/invoke/*`: chat completion (plain or Server-Sent Events), speech to text and text to
/// speech, for callers that signed the request with their access key (see `SignedRequestMiddleware`).
struct InvokeRoutes {
    let chatModels: any Grpc_Ai_V1_AiChatModelService.ClientProtocol
    let speech: any Grpc_Ai_V1_AiSpeechService.ClientProtocol

    static let audioExtensions = AudioFormats.transcriptionUploads
    static let speechFormats = AudioFormats.speechOutputs
    static let maxAudioBytes = 25 << 20
    /// Room for the multipart framing and the small fields around a 25 MiB file.
    static let maxTranscriptionBodyBytes = maxAudioBytes + (64 << 10)

    func register(json signed: RouterGroup<GatewayRequestContext>, upload signedUpload: RouterGroup<GatewayRequestContext>) {
        signed.post("/ai/invoke/chat_completion", use: chatCompletion)
        signed.post("/ai/invoke/tts", use: textToSpeech)
        signedUpload.post("/ai/invoke/stt", use: speechToText)
    }

    // MARK: - Chat completion

    @Sendable func chatCompletion(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        var body = try await JSONBody.read(request, context: context)
        let chatModelId = body.string("chatModelId", required: false)
        let question = body.string("question", required: true, length: 1...32_000)
        let messages = body.stringObjects("messages", fields: ["role", "content", "name"], maxCount: 100)
        let stream = body.bool("stream") ?? false
        try body.finish()
        if let chatModelId, !chatModelId.isEmpty { _ = try Identifier.require(chatModelId, notFound: "chat model") }

        let call = Grpc_Ai_V1_CreateChatCompletionRequest.with {
            if let chatModelId { $0.chaModelID = chatModelId }
            $0.question = question ?? ""
            $0.messages = (messages ?? []).map { message in
                .with {
                    if let role = message["role"] { $0.role = role }
                    if let content = message["content"] { $0.content = content }
                    if let name = message["name"] { $0.name = name }
                }
            }
        }
        if stream { return try await streamedCompletion(call, context: context) }
        let chatModels = self.chatModels
        return try ResponseBody.success(CompletionView(try await context.cancellingWhenClientLeaves {
            try await chatModels.createChatCompletion(call)
        }))
    }

    /// Relays the service's chunks as Server-Sent Events: `data: {chunk}` … `data: [DONE]`;
    /// an error after the first chunk ends the stream with an `event: error` (`ServerSentEventRelay`).
    private func streamedCompletion(_ call: Grpc_Ai_V1_CreateChatCompletionRequest, context: GatewayRequestContext) async throws -> Response {
        let chatModels = self.chatModels
        let requestId = RequestScope.current?.requestId ?? ""
        return try await ServerSentEventRelay.respond(
            context: context,
            call: { (feed: ServerSentEventRelay.Feed<Void, Grpc_Ai_V1_ChatCompletionChunk>) in
                try await chatModels.streamChatCompletion(call) { response in
                    for try await chunk in response.messages {
                        feed.send(chunk)
                        feed.open(())
                    }
                }
            },
            encode: { chunk in try Self.event(CompletionChunkView(chunk)) },
            errorEvent: { error in Self.errorEvent(error, requestId: requestId) }
        )
    }

    static func event(_ payload: some Encodable) throws -> ByteBuffer {
        if let event = try DirectJSONEncoder.bytes(payload, prefix: "data: ", suffix: "\n\n") { return event }
        var buffer = ByteBuffer(string: "data: ")
        buffer.writeBytes(try ResponseBody.encoder.encode(payload))
        buffer.writeString("\n\n")
        return buffer
    }

    /// The error body of the contract, as the stream's last event.
    static func errorEvent(_ error: any Error, requestId: String) -> ByteBuffer {
        let apiError = (error as? RPCError).map(APIError.init) ?? APIError(.badGateway, message: "the stream ended unexpectedly")
        var buffer = ByteBuffer(string: "event: error\ndata: ")
        buffer.writeBytes(ResponseBody.errorJSON(apiError, requestId: requestId))
        buffer.writeString("\n\n")
        return buffer
    }

    // MARK: - Speech

    /// Multipart `file` (flac, m4a, mp3, mp4, mpeg, mpga, ogg, wav or webm, at most 25 MiB) with optional
    /// `prompt`, `language` and `temperature` → `{text}`.
    @Sendable func speechToText(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: Self.maxTranscriptionBodyBytes)
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, code: APIError.gatewayValidationCode, message: "the audio file must be at most 25 MiB")
        }
        let form = try MultipartForm(contentType: request.headers[.contentType], buffer: buffer)
        var violations = Violations()
        guard let file = form.part(named: "file") else {
            violations.add("file", "file is required: send the audio as the multipart field `file`")
            throw APIError.invalidBody(violations.items)
        }
        let filename = file.filename ?? ""
        if filename.utf8.count > 255 { violations.add("file", "the file name must be at most 255 bytes long") }
        let fileExtension = filename.split(separator: ".").count > 1 ? (filename.split(separator: ".").last.map { $0.lowercased() } ?? "") : ""
        guard Self.audioExtensions.contains(fileExtension) else {
            throw APIError(
                .badRequest, code: APIError.gatewayValidationCode,
                message: "unsupported audio file \(filename.quotedForMessage): supported types are \(Self.audioExtensions.joined(separator: ", "))",
                meta: [FieldViolation(property: "file", constraints: ["file must have one of the extensions \(Self.audioExtensions.joined(separator: ", "))"])]
            )
        }
        if file.body.readableBytes > Self.maxAudioBytes {
            throw APIError(.contentTooLarge, code: APIError.gatewayValidationCode, message: "the audio file must be at most 25 MiB")
        }
        if file.body.readableBytes == 0 { violations.add("file", "file is empty") }
        let prompt = try form.text("prompt")
        if let prompt { violations.checkLength("prompt", prompt, 0...4000) }
        let language = try form.text("language")?.trimmingCharacters(in: .whitespaces)
        if let language, !language.isEmpty,
           !(2...3).contains(language.count) || !language.allSatisfy({ $0.isASCII && $0.isLetter }) {
            violations.add("language", "language must be an ISO-639-1 code such as en or de")
        }
        var temperature: Double?
        if let text = try form.text("temperature"), !text.isEmpty {
            if let value = Double(text), (0...1).contains(value) { temperature = value } else {
                violations.add("temperature", "temperature must be a number from 0 to 1")
            }
        }
        try violations.throwIfInvalid()

        let speech = self.speech
        let samplingTemperature = temperature
        let result = try await context.cancellingWhenClientLeaves { try await speech.createTranscription(.with {
            $0.buffer = Data(file.body.readableBytesView)
            $0.filename = filename
            if let prompt, !prompt.isEmpty { $0.prompt = prompt }
            if let language, !language.isEmpty { $0.languageCode = language.lowercased() }
            if let samplingTemperature { $0.samplingTemperature = samplingTemperature }
        }) }
        return try ResponseBody.success(TranscriptionView(text: result.text))
    }

    /// `{text, voice?, format?}` → the audio, with its content type.
    @Sendable func textToSpeech(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        var body = try await JSONBody.read(request, context: context)
        let text = body.string("text", required: true, length: 1...4096)
        let voice = body.string("voice", required: false, length: 1...64)
        let format = body.string("format", required: false)?.lowercased()
        var violations = body.violations
        if let format, !Self.speechFormats.contains(format) {
            violations.add("format", "format must be one of \(Self.speechFormats.joined(separator: ", "))")
        }
        try violations.throwIfInvalid()
        let speech = self.speech
        let audio = try await context.cancellingWhenClientLeaves { try await speech.createSpeech(.with {
            $0.text = text ?? ""
            if let voice { $0.voice = voice }
            if let format { $0.format = format }
        }) }
        return Response(
            status: .ok,
            headers: [.contentType: audio.contentType.isEmpty ? "application/octet-stream" : audio.contentType],
            body: Hummingbird.ResponseBody(byteBuffer: ByteBuffer(bytes: audio.audio))
        )
    }
}

extension Violations {
    /// 422 from the gateway listing every failing field, if any failed.
    func throwIfInvalid() throws {
        if !isEmpty { throw APIError.invalidBody(items) }
    }
}
