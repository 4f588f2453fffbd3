import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Platform
import WireFormats

extension HTTPField.Name {
    static let shouldRetry = HTTPField.Name("x-should-retry")!
    static let rateLimitLimitRequests = HTTPField.Name("x-ratelimit-limit-requests")!
    static let rateLimitRemainingRequests = HTTPField.Name("x-ratelimit-remaining-requests")!
    static let rateLimitResetRequests = HTTPField.Name("x-ratelimit-reset-requests")!
}

/// An error as the OpenAI-compatible API answers it: `{"error": {message, type, param, code}}`
/// with the status the official SDKs turn into the matching exception (400 BadRequestError,
/// 401 AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError, 409 ConflictError,
/// 422 UnprocessableEntityError, 429 RateLimitError, 5xx InternalServerError).
struct OpenAIError: Sendable {
    var status: HTTPResponse.Status
    var message: String
    var type: String
    var param: String?
    var code: String?
    var headers: HTTPFields

    /// The platform's error, in OpenAI's terms. A spent quota is 429 `insufficient_quota` with
    /// `x-should-retry: false`, so the SDKs do not retry what cannot succeed; a field the
    /// platform rejected is 400 `invalid_request_error` naming the field.
    init(_ error: APIError) {
        headers = error.headers
        message = error.message
        param = error.meta.first?.property
        code = nil
        let reason = error.reason.flatMap(ErrorReason.init(rawValue:))
        // The status from the platform's table (the usage record says the same); the type and
        // code the SDKs read beside it from here.
        status = HTTPResponse.Status(code: ErrorReason.openAIStatus(for: error.status.code, reason: reason))
        switch (error.status.code, reason) {
        case (_, .quotaExceeded?):
            (type, code) = ("insufficient_quota", "insufficient_quota")
            headers[.shouldRetry] = "false"
        case (_, .rateLimited?), (_, .providerRateLimited?), (_, .quotaBusy?):
            (type, code) = ("requests", "rate_limit_exceeded")
        case (_, .invalidApiKey?), (401, _):
            (type, code) = ("invalid_request_error", "invalid_api_key")
        case (_, .modelNotAllowed?):
            (type, code) = ("permission_error", "model_not_allowed")
        case (_, .modelNotFound?):
            (type, code) = ("invalid_request_error", "model_not_found")
        case (_, .unsupportedAudioFormat?), (_, .undecodableAudio?):
            (type, code) = ("invalid_request_error", "invalid_file_format")
        case (403, _):
            type = "permission_error"
        case (404, _):
            type = "invalid_request_error"
            code = "not_found"
        case (let other, _) where other >= 500 || other == clientClosedRequestStatus:
            type = "server_error"
        default:
            type = "invalid_request_error"
        }
    }

    init(_ status: HTTPResponse.Status, message: String, type: String = "invalid_request_error", param: String? = nil, code: String? = nil) {
        (self.status, self.message, self.type, self.param, self.code, headers) = (status, message, type, param, code, [:])
    }

    /// `{"error": {…}}`.
    var json: [UInt8] {
        let error = JSONObject([
            ("message", .string(message)), ("type", .string(type)),
            ("param", param.map(JSONValue.string) ?? .null), ("code", code.map(JSONValue.string) ?? .null),
        ])
        return JSONWriter.bytes(.object(JSONObject([("error", .object(error))])))
    }

    var response: Response {
        var response = Response(
            status: status, headers: [.contentType: "application/json"],
            body: Hummingbird.ResponseBody(byteBuffer: ByteBuffer(bytes: json))
        )
        for field in headers { response.headers.append(field) }
        return response
    }

    /// Whether `path` belongs to the OpenAI-compatible API, whose errors take this shape.
    static func applies(toPath path: String) -> Bool {
        path == "/v1" || path.hasPrefix("/v1/")
    }
}
