import Foundation
import GRPCCore
import Logging

/// Sends the current `RequestScope` (request id, caller, role) with every call as metadata, and
/// the client's time limit when given one (`RequestScope.callDeadline` on the service's side), so
/// that what a service records of a call the client timed out says so rather than that the
/// client left.
public struct RequestScopeClientInterceptor: ClientInterceptor {
    /// Milliseconds; told, not enforced by the service: this client resets the call when it passes.
    private let callTimeout: String?

    public init(callTimeout: Duration? = nil) {
        self.callTimeout = callTimeout.map { String($0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000) }
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingClientRequest<Input>,
        context: ClientContext,
        next: @concurrent (StreamingClientRequest<Input>, ClientContext) async throws -> StreamingClientResponse<Output>
    ) async throws -> StreamingClientResponse<Output> {
        var request = request
        // The deadline stays with this client, which cancels the call (RST_STREAM) when it passes;
        // a server told the deadline would run a timer task of its own for every call, a cost
        // measured at about a tenth of a millisecond of CPU per call (bench/README.md).
        request.metadata.removeAllValues(forKey: "grpc-timeout")
        if let callTimeout { request.metadata.replaceOrAddString(callTimeout, forKey: MetadataKey.callTimeout) }
        if let scope = RequestScope.current {
            request.metadata.replaceOrAddString(scope.requestId, forKey: MetadataKey.requestId)
            if let userId = scope.userId { request.metadata.replaceOrAddString(userId, forKey: MetadataKey.userId) }
            if let role = scope.role { request.metadata.replaceOrAddString(role.rawValue, forKey: MetadataKey.userRole) }
            if let accessKey = scope.accessKey { request.metadata.replaceOrAddString(accessKey, forKey: MetadataKey.accessKey) }
            if let apiKeyId = scope.apiKeyId { request.metadata.replaceOrAddString(apiKeyId, forKey: MetadataKey.apiKeyId) }
        }
        return try await next(request, context)
    }
}

/// Restores the caller's `RequestScope` from metadata for the handler (so its log lines carry the
/// request id), logs each call, and turns errors into gRPC statuses that name this service.
public struct RequestScopeServerInterceptor: ServerInterceptor {
    public let application: String
    public let logger: Logger
    /// The service's database, whose outages are UNAVAILABLE rather than INTERNAL.
    public let database: DatabaseAvailability?

    public init(application: String, logger: Logger, database: DatabaseAvailability? = nil) {
        self.application = application
        self.logger = logger
        self.database = database
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @concurrent @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let scope: RequestScope
        do {
            scope = try RequestScope(metadata: request.metadata)
        } catch {
            logger.info("rpc refused", metadata: ["rpc": "\(context.descriptor.fullyQualifiedMethod)", "message": "\(error.message)"])
            throw RPCError(mapping: error, application: application)
        }
        let started = ContinuousClock.now
        return try await RequestScope.$current.withValue(scope) {
            do {
                let response = try await next(request, context)
                logger.debug("rpc served", metadata: ["rpc": "\(context.descriptor.fullyQualifiedMethod)", "duration": "\(ContinuousClock.now - started)"])
                return response
            } catch {
                let status = rpcError(for: error, method: context.descriptor.fullyQualifiedMethod)
                logger.log(
                    level: status.code == .internalError ? .error : .info,
                    "rpc failed",
                    metadata: ["rpc": "\(context.descriptor.fullyQualifiedMethod)", "code": "\(status.code)", "message": "\(status.message)"]
                )
                throw status
            }
        }
    }

    private func rpcError(for error: any Error, method: String) -> RPCError {
        if let unavailable = database?.unavailableError(for: error) {
            logger.warning("database unavailable", metadata: ["rpc": "\(method)", "error": "\(String(reflecting: error))"])
            return RPCError(mapping: unavailable, application: application)
        }
        if DatabaseFailure.isUnstorableText(error) {
            return RPCError(
                mapping: DomainError(.invalidArgument, "the request holds text the database cannot store (a NUL character, or an unrepresentable one)"),
                application: application
            )
        }
        if error is CancellationError {
            // The caller left or its deadline passed (the call was reset): nothing failed here.
            var metadata: Metadata = [:]
            metadata.addString(application, forKey: MetadataKey.errorApplication)
            return RPCError(code: .cancelled, message: "the call was cancelled", metadata: metadata)
        }
        if !(error is DomainError || error is RPCError) {
            // Details of unexpected failures (SQL, I/O) stay in this service's log.
            logger.error("unexpected failure", metadata: ["rpc": "\(method)", "error": "\(String(reflecting: error))"])
        }
        return RPCError(mapping: error, application: application)
    }
}

extension RequestScope {
    /// The scope a caller's metadata describes: `x-request-id`, `x-user-id`, `x-user-role` and
    /// `x-access-key`, or the original gateway's `requestid`, `userid` and `tenantid` (no role:
    /// `userid` alone is a caller with the user role; the tenant is the user). A request id that
    /// is not 1–128 visible ASCII characters is replaced; an identity that is not 1–128 of them is
    /// refused, so nothing unbounded reaches a log line or a record.
    init(metadata: Metadata) throws(DomainError) {
        func first(_ key: String) -> String? { metadata[stringValues: key].first(where: { _ in true }) }
        func isSane(_ value: String) -> Bool {
            (1...128).contains(value.utf8.count) && value.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
        }
        let requestId = (first(MetadataKey.requestId) ?? first(MetadataKey.legacyRequestId)).flatMap { isSane($0) ? $0 : nil }
        let legacyUser = first(MetadataKey.userId) == nil ? first(MetadataKey.legacyUserId) : nil
        let userId = first(MetadataKey.userId) ?? legacyUser
        let roleName = first(MetadataKey.userRole) ?? (legacyUser != nil ? Role.user.rawValue : nil)
        let accessKey = first(MetadataKey.accessKey)
        let apiKeyId = first(MetadataKey.apiKeyId)
        for (name, value) in [("user id", userId), ("role", roleName), ("access key", accessKey), ("API key", apiKeyId)] {
            if let value, !isSane(value) {
                throw DomainError(.unauthenticated, "the caller's \(name) in the call's metadata is malformed")
            }
        }
        // A role the platform does not know is refused, not dropped: a call without a role is
        // one the services trust (the platform's own tools).
        let role = try roleName.map { name throws(DomainError) -> Role in
            guard let role = Role(rawValue: name) else { throw DomainError(.unauthenticated, "the caller's role in the call's metadata is unknown") }
            return role
        }
        // A day at most; anything else is ignored (the call then has no known limit).
        let deadline = first(MetadataKey.callTimeout).flatMap(Int64.init).flatMap { (1...86_400_000).contains($0) ? ContinuousClock.now + .milliseconds($0) : nil }
        self.init(requestId: requestId ?? SortableID.make(), userId: userId, role: role, accessKey: accessKey, apiKeyId: apiKeyId, callDeadline: deadline)
    }
}

extension RPCError {
    /// The longest status message a service sends, in bytes of UTF-8.
    public static let maxMessageBytes = 1024
    /// The longest value of one trailer a service sends.
    public static let maxTrailerValueBytes = 8 << 10

    /// The status a service answers for `error`: a `DomainError` with its code, message, field
    /// violations, reason and retry-after as trailers; an `RPCError` as it is; anything else as
    /// INTERNAL without details. Every status names `application`.
    ///
    /// Messages and trailers are bounded: they travel as HTTP/2 headers, and a header block
    /// larger than the peer accepts (16 KiB for grpc-swift) is a connection error, which would
    /// fail every other call on the connection, other users' calls among them.
    public init(mapping error: any Error, application: String) {
        var metadata: Metadata = [:]
        metadata.addString(application, forKey: MetadataKey.errorApplication)
        switch error {
        case let domain as DomainError:
            if !domain.violations.isEmpty, let json = Self.violationsJSON(domain.violations) {
                metadata.addString(json, forKey: MetadataKey.errorViolations)
            }
            if let reason = domain.reason { metadata.addString(reason.truncated(toUTF8Bytes: 128), forKey: MetadataKey.errorReason) }
            if let retryAfter = domain.retryAfterSeconds {
                metadata.addString(String(retryAfter), forKey: MetadataKey.errorRetryAfter)
            }
            if let limit = domain.rateLimitPerMinute {
                metadata.addString(String(limit), forKey: MetadataKey.errorRateLimit)
            }
            self.init(code: domain.kind.rpcCode, message: domain.message.truncated(toUTF8Bytes: Self.maxMessageBytes), metadata: metadata)
        case let rpc as RPCError:
            var bounded: Metadata = [:]
            for (key, value) in rpc.metadata {
                switch value {
                case .string(let text): bounded.addString(text.truncated(toUTF8Bytes: Self.maxTrailerValueBytes), forKey: key)
                case .binary(let bytes): if bytes.count <= Self.maxTrailerValueBytes { bounded.addBinary(bytes, forKey: key) }
                }
            }
            if bounded[stringValues: MetadataKey.errorApplication].first(where: { _ in true }) == nil {
                bounded.addString(application, forKey: MetadataKey.errorApplication)
            }
            self.init(code: rpc.code, message: rpc.message.truncated(toUTF8Bytes: Self.maxMessageBytes), metadata: bounded)
        default:
            self.init(code: .internalError, message: "internal error in \(application)", metadata: metadata)
        }
    }

    /// The violations as JSON within `maxTrailerValueBytes`: long texts cut, and as many fields
    /// as fit (the message still names the request invalid).
    static func violationsJSON(_ violations: [FieldViolation]) -> String? {
        var kept = violations.prefix(100).map { violation in
            FieldViolation(
                property: violation.property.bounded(toScalars: 120),
                constraints: violation.constraints.prefix(10).map { $0.bounded(toScalars: 300) }
            )
        }
        while !kept.isEmpty {
            if let json = try? JSONEncoder().encode(kept), json.count <= maxTrailerValueBytes {
                return String(decoding: json, as: UTF8.self)
            }
            kept.removeLast(max(1, kept.count / 2))
        }
        return nil
    }
}

extension DomainError.Kind {
    public var rpcCode: RPCError.Code {
        switch self {
        case .invalidArgument: .invalidArgument
        case .notFound: .notFound
        case .alreadyExists: .alreadyExists
        case .permissionDenied: .permissionDenied
        case .unauthenticated: .unauthenticated
        case .failedPrecondition: .failedPrecondition
        case .resourceExhausted: .resourceExhausted
        case .unavailable: .unavailable
        case .upstreamFailure: .unknown
        case .deadlineExceeded: .deadlineExceeded
        case .internal: .internalError
        }
    }
}
