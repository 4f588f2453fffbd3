import Foundation
import GRPCCore
import HTTPTypes
import Hummingbird
import Platform

/// An error answered to an HTTP client in the platform's error body:
/// `{statusCode, code, message, application, hostname, requestId, meta}`.
public struct APIError: Error, Sendable, Equatable {
    /// `code` for a body the gateway rejected.
    public static let gatewayValidationCode = 600
    /// `code` for a request a service rejected as invalid.
    public static let serviceValidationCode = 601

    public var status: HTTPResponse.Status
    public var code: Int
    public var message: String
    public var application: String
    public var meta: [FieldViolation]
    public var headers: HTTPFields

    public init(
        _ status: HTTPResponse.Status, code: Int = -1, message: String, application: String = gatewayApplication,
        meta: [FieldViolation] = [], headers: HTTPFields = [:]
    ) {
        self.status = status
        self.code = code
        self.message = message
        self.application = application
        self.meta = meta
        self.headers = headers
    }

    public static func invalidBody(_ violations: [FieldViolation]) -> APIError {
        APIError(
            .unprocessableContent, code: gatewayValidationCode,
            message: "invalid request: " + violations.map(\.property).joined(separator: ", "), meta: violations
        )
    }

    public static func badRequest(_ message: String) -> APIError {
        APIError(.badRequest, code: gatewayValidationCode, message: message)
    }

    public static func unauthenticated(_ message: String) -> APIError {
        APIError(.unauthorized, message: message)
    }

    public static func forbidden(_ message: String) -> APIError {
        APIError(.forbidden, message: message)
    }

    /// Maps a service's gRPC status to the HTTP status of the contract, keeping its message, the
    /// service that raised it and any field violations.
    public init(_ error: RPCError) {
        let application = error.metadata[stringValues: MetadataKey.errorApplication].first(where: { _ in true })
        var meta: [FieldViolation] = []
        if let json = error.metadata[stringValues: MetadataKey.errorViolations].first(where: { _ in true }),
           let decoded = try? JSONDecoder().decode([FieldViolation].self, from: Data(json.utf8)) {
            meta = decoded
        }
        let reason = error.metadata[stringValues: MetadataKey.errorReason].first(where: { _ in true })
        let known = reason.flatMap { Self.reasons[$0] }
        let reachedService = application != nil
        var headers: HTTPFields = [:]
        if let retryAfter = error.metadata[stringValues: MetadataKey.errorRetryAfter].first(where: { _ in true }),
           let seconds = Int(retryAfter), seconds >= 0 {
            headers[.retryAfter] = String(seconds)
        }
        self.init(
            known?.status ?? Self.httpStatus(for: error.code),
            code: known?.code ?? (error.code == .invalidArgument && reachedService ? Self.serviceValidationCode : -1),
            message: reachedService ? error.message : "service unavailable: \(error.message)",
            application: application ?? gatewayApplication,
            meta: meta,
            headers: headers
        )
        self.reason = reason
    }

    /// The machine-readable reason a service gave (`DomainError.reason`), if any.
    public var reason: String?

    /// Reasons whose HTTP status differs from their gRPC code's, and the error `code` they carry.
    static let reasons: [String: (status: HTTPResponse.Status, code: Int)] = [
        "RateLimited": (.tooManyRequests, 701),
        "QuotaExceeded": (HTTPResponse.Status(code: 402, reasonPhrase: "Payment Required"), 702),
        "ProviderRateLimited": (.tooManyRequests, 703),
        "QuotaBusy": (.tooManyRequests, 704),
        "UnsupportedAudioFormat": (.badRequest, 600),
        "UndecodableAudio": (.badRequest, 601),
    ]

    public static func httpStatus(for code: RPCError.Code) -> HTTPResponse.Status {
        switch code {
        case .cancelled: HTTPResponse.Status(code: 499, reasonPhrase: "Client Closed Request")
        case .unknown: .badGateway
        case .invalidArgument: .unprocessableContent
        case .deadlineExceeded: .gatewayTimeout
        case .notFound: .notFound
        case .alreadyExists: .conflict
        case .permissionDenied: .forbidden
        case .resourceExhausted: .tooManyRequests
        case .failedPrecondition: .preconditionFailed
        case .aborted: .conflict
        case .outOfRange: .badRequest
        case .unimplemented: .notImplemented
        case .internalError: .internalServerError
        case .unavailable: .serviceUnavailable
        case .dataLoss: .internalServerError
        case .unauthenticated: .unauthorized
        default: .internalServerError
        }
    }
}

public let gatewayApplication = "gateway"
