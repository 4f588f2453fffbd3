import Foundation
import GRPCCore
import Logging

/// Sends the current `RequestScope` (request id, caller, role) with every call as metadata.
public struct RequestScopeClientInterceptor: ClientInterceptor {
    public init() {}

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingClientRequest<Input>,
        context: ClientContext,
        next: (StreamingClientRequest<Input>, ClientContext) async throws -> StreamingClientResponse<Output>
    ) async throws -> StreamingClientResponse<Output> {
        var request = request
        // The deadline stays with this client, which cancels the call (RST_STREAM) when it passes;
        // a server told the deadline would run a timer task of its own for every call, a cost
        // measured at about a tenth of a millisecond of CPU per call (bench/README.md).
        request.metadata.removeAllValues(forKey: "grpc-timeout")
        if let scope = RequestScope.current {
            request.metadata.replaceOrAddString(scope.requestId, forKey: MetadataKey.requestId)
            if let userId = scope.userId { request.metadata.replaceOrAddString(userId, forKey: MetadataKey.userId) }
            if let role = scope.role { request.metadata.replaceOrAddString(role, forKey: MetadataKey.userRole) }
            if let accessKey = scope.accessKey { request.metadata.replaceOrAddString(accessKey, forKey: MetadataKey.accessKey) }
        }
        return try await next(request, context)
    }
}

/// Restores the caller's `RequestScope` from metadata for the handler (so its log lines carry the
/// request id), logs each call, and turns errors into gRPC statuses that name this service.
public struct RequestScopeServerInterceptor: ServerInterceptor {
    public let application: String
    public let logger: Logger

    public init(application: String, logger: Logger) {
        self.application = application
        self.logger = logger
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let metadata = request.metadata
        let scope = RequestScope(
            requestId: metadata[stringValues: MetadataKey.requestId].first(where: { _ in true }) ?? SortableID.make(),
            userId: metadata[stringValues: MetadataKey.userId].first(where: { _ in true }),
            role: metadata[stringValues: MetadataKey.userRole].first(where: { _ in true }),
            accessKey: metadata[stringValues: MetadataKey.accessKey].first(where: { _ in true })
        )
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
        if !(error is DomainError || error is RPCError) {
            // Details of unexpected failures (SQL, I/O) stay in this service's log.
            logger.error("unexpected failure", metadata: ["rpc": "\(method)", "error": "\(String(reflecting: error))"])
        }
        return RPCError(mapping: error, application: application)
    }
}

extension RPCError {
    /// The status a service answers for `error`: a `DomainError` with its code, message, field
    /// violations, reason and retry-after as trailers; an `RPCError` as it is; anything else as
    /// INTERNAL without details. Every status names `application`.
    public init(mapping error: any Error, application: String) {
        var metadata: Metadata = [:]
        metadata.addString(application, forKey: MetadataKey.errorApplication)
        switch error {
        case let domain as DomainError:
            if !domain.violations.isEmpty,
               let json = try? JSONEncoder().encode(domain.violations) {
                metadata.addString(String(decoding: json, as: UTF8.self), forKey: MetadataKey.errorViolations)
            }
            if let reason = domain.reason { metadata.addString(reason, forKey: MetadataKey.errorReason) }
            if let retryAfter = domain.retryAfterSeconds {
                metadata.addString(String(retryAfter), forKey: MetadataKey.errorRetryAfter)
            }
            self.init(code: domain.kind.rpcCode, message: domain.message, metadata: metadata)
        case var rpc as RPCError:
            if rpc.metadata[stringValues: MetadataKey.errorApplication].first(where: { _ in true }) == nil {
                rpc.metadata.addString(application, forKey: MetadataKey.errorApplication)
            }
            self = rpc
        default:
            self.init(code: .internalError, message: "internal error in \(application)", metadata: metadata)
        }
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
