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

    /// The client went away before its answer (nobody reads this one; the metrics and the access log do).
    public static let clientClosedRequest = APIError(httpStatus(clientClosedRequestStatus), message: "the client closed the request")

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
        let known = reason.flatMap(ErrorReason.init(rawValue:))
        let reachedService = application != nil
        var headers: HTTPFields = [:]
        if let retryAfter = error.metadata[stringValues: MetadataKey.errorRetryAfter].first(where: { _ in true }),
           let seconds = Int(retryAfter), seconds >= 0 {
            headers[.retryAfter] = String(seconds)
            if let limit = error.metadata[stringValues: MetadataKey.errorRateLimit].first(where: { _ in true }), let limit = Int(limit) {
                headers[.rateLimitLimitRequests] = String(limit)
                headers[.rateLimitRemainingRequests] = "0"
                headers[.rateLimitResetRequests] = "\(seconds)s"
            }
        }
        self.init(
            Self.httpStatus(known?.httpStatus ?? error.code.httpStatus),
            code: known?.errorCode ?? (error.code == .invalidArgument && reachedService ? Self.serviceValidationCode : -1),
            message: reachedService ? error.message : "service unavailable: \(error.message)",
            application: application ?? gatewayApplication,
            meta: meta,
            headers: headers
        )
        self.reason = reason
    }

    /// The machine-readable reason a service gave (`DomainError.reason`), if any.
    public var reason: String?

    /// The HTTP status of a gRPC code, by the architecture's table (`RPCError.Code.httpStatus`).
    public static func httpStatus(for code: RPCError.Code) -> HTTPResponse.Status {
        httpStatus(code.httpStatus)
    }

    static func httpStatus(_ code: Int) -> HTTPResponse.Status {
        switch code {
        case 402: HTTPResponse.Status(code: 402, reasonPhrase: "Payment Required")
        case clientClosedRequestStatus: HTTPResponse.Status(code: clientClosedRequestStatus, reasonPhrase: "Client Closed Request")
        default: HTTPResponse.Status(code: code)
        }
    }
}

public let gatewayApplication = "gateway"
