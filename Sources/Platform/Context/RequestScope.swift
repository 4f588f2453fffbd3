import Logging

/// What a service knows about the request it is serving: set by the gateway for each HTTP request
/// and carried to the services as gRPC metadata, where an interceptor restores it.
public struct RequestScope: Sendable, Equatable {
    public var requestId: String
    public var userId: String?
    public var role: Role?
    /// The access key that signed the request, for AK/SK-authenticated calls.
    public var accessKey: String?
    /// The API key of an OpenAI-compatible call.
    public var apiKeyId: String?
    /// The client's trace (from its `traceparent`), for log lines while tracing is off; with
    /// tracing on, log lines take the current span's ids instead. Not sent to the services.
    public var traceId: String?
    /// When the caller gives up on the call it made (its time limit, told with the call): a call
    /// cancelled about then was timed out by the caller, not left by its client.
    public var callDeadline: ContinuousClock.Instant?

    public init(
        requestId: String, userId: String? = nil, role: Role? = nil, accessKey: String? = nil, apiKeyId: String? = nil,
        traceId: String? = nil, callDeadline: ContinuousClock.Instant? = nil
    ) {
        self.requestId = requestId
        self.traceId = traceId
        self.callDeadline = callDeadline
        self.userId = userId
        self.role = role
        self.accessKey = accessKey
        self.apiKeyId = apiKeyId
    }

    /// The scope of the request the current task is serving, if any.
    @TaskLocal public static var current: RequestScope?
}

/// Names of the gRPC metadata entries that carry a `RequestScope` and error details.
public enum MetadataKey {
    public static let requestId = "x-request-id"
    public static let userId = "x-user-id"
    public static let userRole = "x-user-role"
    public static let accessKey = "x-access-key"
    public static let apiKeyId = "x-api-key-id"
    /// The caller's time limit for the call, in milliseconds (`RequestScopeClientInterceptor`).
    public static let callTimeout = "x-call-timeout-ms"
    public static let traceparent = "traceparent"
    /// The original system's gateway named them so (`ai.proto`'s clients still do).
    public static let legacyRequestId = "requestid"
    public static let legacyUserId = "userid"
    public static let legacyTenantId = "tenantid"
    /// The service that raised an error (trailing metadata).
    public static let errorApplication = "x-error-application"
    /// JSON list of `FieldViolation`s for a rejected request (trailing metadata).
    public static let errorViolations = "x-error-violations"
    /// `DomainError.reason` (trailing metadata).
    public static let errorReason = "x-error-reason"
    /// `DomainError.retryAfterSeconds` (trailing metadata).
    public static let errorRetryAfter = "x-error-retry-after"
    /// `DomainError.rateLimitPerMinute` (trailing metadata).
    public static let errorRateLimit = "x-error-rate-limit"
}

extension Logger {
    /// Adds the current request's id (and caller) to every log line written while serving it.
    public static let requestScopeMetadataProvider = Logger.MetadataProvider {
        guard let scope = RequestScope.current else { return [:] }
        var metadata: Logger.Metadata = ["request-id": .string(scope.requestId)]
        if let userId = scope.userId { metadata["user-id"] = .string(userId) }
        if let traceId = scope.traceId { metadata["trace-id"] = .string(traceId) }
        return metadata
    }
}
