import AISaaSProtos
import Foundation
import GRPCCore
import HTTPTypes
import Hummingbird
import NIOCore
import Platform
import WireFormats

/// `/v1`: OpenAI's wire API, so that apps written against the official SDKs only change their
/// `base_url` and key. Bodies pass through to the AI service, which resolves the model and runs
/// the same pipeline as `/ai/invoke`; answers are the provider's. Errors take OpenAI's shape
/// (`OpenAIError`, applied by the envelope middleware for every path under `/v1`).
struct OpenAIRoutes {
    let openAI: any Grpc_Ai_V1_AiOpenAIService.ClientProtocol

    static let maxJSONBodyBytes = 8 << 20
    static let maxUploadBodyBytes = InvokeRoutes.maxTranscriptionBodyBytes

    func register(json: RouterGroup<GatewayRequestContext>, upload: RouterGroup<GatewayRequestContext>) {
        json.post("/v1/chat/completions", use: chatCompletions)
        json.post("/v1/embeddings", use: embeddings)
        json.post("/v1/audio/speech", use: speech)
        upload.post("/v1/audio/transcriptions") { request, context in try await transcription(request, context: context, translate: false) }
        upload.post("/v1/audio/translations") { request, context in try await transcription(request, context: context, translate: true) }
        json.get("/v1/models", use: models)
        json.get("/v1/models/{id}", use: model)
        // Provider models are also named `provider/model`, which the SDKs put in the path as is.
        json.get("/v1/models/{id}/{model}", use: model)
    }

    // MARK: - JSON endpoints

    @Sendable func chatCompletions(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let body = try await Self.jsonBody(request, context: context)
        let call = Self.call(body, context: context)
        if case .bool(true)? = body.object["stream"] {
            return try await OpenAIStreamRelay(openAI: openAI).respond(call, context: context)
        }
        let openAI = self.openAI
        return Self.answer(try await context.cancellingWhenClientLeaves { try await openAI.createChatCompletion(call) })
    }

    @Sendable func embeddings(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let call = Self.call(try await Self.jsonBody(request, context: context), context: context)
        let openAI = self.openAI
        return Self.answer(try await context.cancellingWhenClientLeaves { try await openAI.createEmbedding(call) })
    }

    @Sendable func speech(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let call = Self.call(try await Self.jsonBody(request, context: context), context: context)
        let openAI = self.openAI
        return Self.answer(try await context.cancellingWhenClientLeaves { try await openAI.createSpeech(call) })
    }

    // MARK: - Audio uploads

    /// Multipart `file` plus OpenAI's fields (`model`, `language`, `prompt`, `response_format`,
    /// `temperature`, `timestamp_granularities[]`…), which all pass through.
    func transcription(_ request: Request, context: GatewayRequestContext, translate: Bool) async throws -> Response {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: Self.maxUploadBodyBytes)
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, message: "The audio file must be at most 25 MiB.", meta: [FieldViolation(property: "file", constraints: ["at most 25 MiB"])])
        }
        let form = try MultipartForm(contentType: request.headers[.contentType], buffer: buffer)
        guard let file = form.part(named: "file"), file.filename != nil else {
            throw APIError.badRequest("you must provide 'file': the audio as a multipart file field").withParam("file")
        }
        // The body may be a little larger than the file (the form's other fields); the file not.
        if file.body.readableBytes > InvokeRoutes.maxAudioBytes {
            throw APIError(.contentTooLarge, message: "The audio file must be at most 25 MiB.", meta: [FieldViolation(property: "file", constraints: ["at most 25 MiB"])])
        }
        var fields: [Grpc_Ai_V1_FormField] = []
        for part in form.parts where part.name != "file" {
            guard part.filename == nil, let value = String(validating: part.body.readableBytesView, as: UTF8.self) else {
                throw APIError.badRequest("form field '\(part.name.truncated(toUTF8Bytes: 64))' must be text").withParam(part.name)
            }
            fields.append(.with {
                $0.name = part.name
                $0.value = value
            })
        }
        let call = Grpc_Ai_V1_OpenAIAudioRequest.with {
            $0.audio = Data(file.body.readableBytesView)
            $0.filename = file.filename ?? ""
            $0.fields = fields
            $0.translate = translate
            $0.allowedModels = context.apiKey?.models ?? []
        }
        let openAI = self.openAI
        return Self.answer(try await context.cancellingWhenClientLeaves { try await openAI.createTranscription(call) })
    }

    // MARK: - Models

    @Sendable func models(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let list = try await listModels(context)
        let data = list.map { JSONValue.object(Self.modelObject($0)) }
        return Self.json(.object(JSONObject([("object", .string("list")), ("data", .array(data))])))
    }

    @Sendable func model(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        // The router hands path segments as sent: a client that percent-encodes the name
        // (`openai%2Fgpt-4o`, as URL builders do) means the name.
        let id = [context.parameters.get("id"), context.parameters.get("model")].compactMap { $0 }
            .map { $0.removingPercentEncoding ?? $0 }.joined(separator: "/")
        guard let found = Self.model(named: id, in: try await listModels(context)) else {
            throw APIError(.notFound, message: "The model \(id.quotedForMessage) does not exist or you do not have access to it.")
                .with(reason: .modelNotFound).withParam("model")
        }
        return Self.json(.object(Self.modelObject(found)))
    }

    /// The listing `name` stands for: its id, or `provider/model` for a provider's model listed
    /// under its bare name (a chat completion takes either).
    static func model(named name: String, in listings: [Grpc_Ai_V1_ModelInfo]) -> Grpc_Ai_V1_ModelInfo? {
        if let exact = listings.first(where: { $0.id == name }) { return exact }
        guard let slash = name.firstIndex(of: "/") else { return nil }
        let provider = name[..<slash], model = name[name.index(after: slash)...]
        // Chat models are owned by "user" and are only ever named by their id.
        return listings.first { $0.ownedBy == provider && $0.ownedBy != "user" && $0.id == model }
    }

    private func listModels(_ context: GatewayRequestContext) async throws -> [Grpc_Ai_V1_ModelInfo] {
        let allowed = context.apiKey?.models ?? []
        return try await retryingWhenUnavailable { try await openAI.listModels(.with { $0.allowedModels = allowed }) }.models
    }

    static func modelObject(_ model: Grpc_Ai_V1_ModelInfo) -> JSONObject {
        JSONObject([
            ("id", .string(model.id)), ("object", .string("model")),
            ("created", .integer(Int64(model.created))), ("owned_by", .string(model.ownedBy)),
        ])
    }

    // MARK: - Shared

    /// The body, checked to be one JSON object (the service reads the fields).
    struct JSONRequestBody {
        var bytes: ByteBuffer
        var object: JSONObject
    }

    static func jsonBody(_ request: Request, context: GatewayRequestContext) async throws -> JSONRequestBody {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: maxJSONBodyBytes)
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, message: "The request body must be at most \(maxJSONBodyBytes >> 20) MiB.")
        }
        let value: JSONValue
        do {
            value = try buffer.withUnsafeReadableBytes { try JSONParser.parse($0) }
        } catch {
            throw APIError.badRequest("We could not parse the JSON body of your request (\(error)). Send a JSON object.")
        }
        guard let object = value.objectValue else {
            throw APIError.badRequest("The body of your request must be a JSON object, not \(value.typeName).")
        }
        return JSONRequestBody(bytes: buffer, object: object)
    }

    static func call(_ body: JSONRequestBody, context: GatewayRequestContext) -> Grpc_Ai_V1_OpenAIRequest {
        .with {
            $0.body = Data(body.bytes.readableBytesView)
            $0.allowedModels = context.apiKey?.models ?? []
        }
    }

    static func answer(_ answer: Grpc_Ai_V1_OpenAIResponse) -> Response {
        var headers: HTTPFields = [.contentType: answer.contentType.isEmpty ? "application/json" : answer.contentType]
        if answer.hasRateLimit { addRateLimit(answer.rateLimit, to: &headers) }
        return Response(status: .ok, headers: headers, body: Hummingbird.ResponseBody(byteBuffer: ByteBuffer(bytes: answer.body)))
    }

    static func json(_ value: JSONValue) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: Hummingbird.ResponseBody(byteBuffer: ByteBuffer(bytes: JSONWriter.bytes(value))))
    }

    /// OpenAI's request limit headers: the limit per minute, what is left, and when the window
    /// has room again (`0s` when it has room now).
    static func addRateLimit(_ state: Grpc_Ai_V1_RateLimitState, to headers: inout HTTPFields) {
        headers[.rateLimitLimitRequests] = String(state.limit)
        headers[.rateLimitRemainingRequests] = String(state.remaining)
        headers[.rateLimitResetRequests] = "\(state.resetSeconds)s"
    }
}

extension APIError {
    func withParam(_ name: String) -> APIError {
        var error = self
        error.meta = [FieldViolation(property: name, constraints: [error.message])]
        return error
    }
}
