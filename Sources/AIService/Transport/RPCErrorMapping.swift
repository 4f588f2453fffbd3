import Foundation
import GRPCCore
import Platform

/// The status the request-scope interceptor would make of an error, for the one place it cannot
/// see: the producer of a streamed response.
enum RPCErrorMapping {
    static func rpcError(for error: any Error) -> RPCError {
        var metadata: Metadata = [:]
        metadata.addString(aiServiceApplication, forKey: MetadataKey.errorApplication)
        switch error {
        case let rpc as RPCError:
            return rpc
        case let domain as DomainError:
            if !domain.violations.isEmpty, let json = try? JSONEncoder().encode(domain.violations) {
                metadata.addString(String(decoding: json, as: UTF8.self), forKey: MetadataKey.errorViolations)
            }
            if let reason = domain.reason { metadata.addString(reason, forKey: MetadataKey.errorReason) }
            if let retryAfter = domain.retryAfterSeconds { metadata.addString(String(retryAfter), forKey: MetadataKey.errorRetryAfter) }
            return RPCError(code: domain.kind.rpcCode, message: domain.message, metadata: metadata)
        case is CancellationError, is ChatStream.ClientGone:
            return RPCError(code: .cancelled, message: "the call was cancelled", metadata: metadata)
        default:
            return RPCError(code: .internalError, message: "internal error in \(aiServiceApplication)", metadata: metadata)
        }
    }
}
