import GRPCCore

/// The machine-readable reasons a service gives beside its gRPC code (`DomainError.reason`, the
/// `x-error-reason` trailer), and what each one is over HTTP where that is not simply the code's
/// status. The gateway's answers, the status recorded in usage records and the signed-request
/// checks all read this one table, so they cannot disagree.
public enum ErrorReason: String, Sendable, CaseIterable {
    case rateLimited = "RateLimited"
    case quotaExceeded = "QuotaExceeded"
    case providerRateLimited = "ProviderRateLimited"
    case quotaBusy = "QuotaBusy"
    case unsupportedAudioFormat = "UnsupportedAudioFormat"
    case undecodableAudio = "UndecodableAudio"
    case databaseUnavailable = "DatabaseUnavailable"
    case providerRejectedCredentials = "ProviderRejectedCredentials"
    case providerRejectedRequest = "ProviderRejectedRequest"
    // cc-auth-v1 (aksk-v1.md), from the user service's VerifySignature.
    case invalidAccessKeyId = "InvalidAccessKeyId"
    case accessDenied = "AccessDenied"
    case signatureDoesNotMatch = "SignatureDoesNotMatch"
    case invalidNonce = "InvalidNonce"
    case nonceReused = "NonceReused"
    // The OpenAI-compatible API.
    case invalidApiKey = "InvalidApiKey"
    case modelNotAllowed = "ModelNotAllowed"
    case modelNotFound = "ModelNotFound"

    /// The HTTP status when it differs from the gRPC code's.
    public var httpStatus: Int? {
        switch self {
        case .rateLimited, .providerRateLimited, .quotaBusy: 429
        case .quotaExceeded: 402
        case .unsupportedAudioFormat, .undecodableAudio, .signatureDoesNotMatch, .invalidNonce: 400
        case .invalidAccessKeyId, .accessDenied: 403
        case .nonceReused: 409
        case .databaseUnavailable: 503
        case .providerRejectedCredentials, .providerRejectedRequest: nil
        case .invalidApiKey: 401
        case .modelNotAllowed: 403
        case .modelNotFound: 404
        }
    }

    /// The error body's `code`, where the reason has one of its own.
    public var errorCode: Int? {
        switch self {
        case .rateLimited: 701
        case .quotaExceeded: 702
        case .providerRateLimited: 703
        case .quotaBusy: 704
        case .unsupportedAudioFormat: 600
        case .undecodableAudio: 601
        default: nil
        }
    }

    /// Whether the error body's `message` is the reason itself (the signature errors of aksk-v1.md).
    public var isProtocolMessage: Bool {
        switch self {
        case .invalidAccessKeyId, .accessDenied, .signatureDoesNotMatch, .invalidNonce, .nonceReused: true
        default: false
        }
    }
}

extension ErrorReason {
    /// The status OpenAI's API answers where the platform answers `status` for `reason`: what a
    /// `/v1` client gets (the SDKs pick their exception by it), and so what its usage record says.
    public static func openAIStatus(for status: Int, reason: ErrorReason?) -> Int {
        switch (status, reason) {
        case (_, .quotaExceeded?), (_, .rateLimited?), (_, .providerRateLimited?), (_, .quotaBusy?): 429
        case (_, .invalidApiKey?), (401, _): 401
        case (_, .modelNotAllowed?): 403
        case (_, .modelNotFound?): 404
        // The provider turned down what the client asked for (a parameter out of its range, say).
        case (_, .unsupportedAudioFormat?), (_, .undecodableAudio?), (_, .providerRejectedRequest?), (422, _), (400, _): 400
        default: status
        }
    }
}

/// nginx's "client closed request", for calls whose caller went away (gRPC CANCELLED).
public let clientClosedRequestStatus = 499

extension RPCError.Code {
    /// The HTTP status of the architecture's mapping.
    public var httpStatus: Int {
        switch self {
        case .cancelled: clientClosedRequestStatus
        case .unknown: 502
        case .invalidArgument: 422
        case .deadlineExceeded: 504
        case .notFound: 404
        case .alreadyExists: 409
        case .permissionDenied: 403
        case .resourceExhausted: 429
        case .failedPrecondition: 412
        case .aborted: 409
        case .outOfRange: 400
        case .unimplemented: 501
        case .internalError: 500
        case .unavailable: 503
        case .dataLoss: 500
        case .unauthenticated: 401
        default: 500
        }
    }
}

extension DomainError {
    /// The HTTP status a caller gets for this error, by the same table as the gateway's.
    public var httpStatus: Int {
        reason.flatMap(ErrorReason.init(rawValue:))?.httpStatus ?? kind.rpcCode.httpStatus
    }
}
