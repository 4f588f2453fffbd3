import GRPCCore
import Platform

/// The status the request-scope interceptor would make of an error, for the one place it cannot
/// see: the producer of a streamed response. A client that left gets CANCELLED.
enum RPCErrorMapping {
    static func rpcError(for error: any Error) -> RPCError {
        if error is CancellationError || error is ChatStream.ClientGone {
            var metadata: Metadata = [:]
            metadata.addString(aiServiceApplication, forKey: MetadataKey.errorApplication)
            return RPCError(code: .cancelled, message: "the call was cancelled", metadata: metadata)
        }
        return RPCError(mapping: error, application: aiServiceApplication)
    }
}
