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

enum RPCCancellation {
    /// Runs `operation` in a task that a cancelled RPC (client gone, deadline passed) cancels, so a
    /// provider request does not outlive its caller. The task runs where the caller runs (on its
    /// event loop in process), so starting and awaiting it costs no thread hand-off.
    static func untilRPCCancelled<Value: Sendable>(_ operation: @escaping @Sendable () async throws -> Value) async throws -> Value {
        let task = Task.onCurrentLoop { try await operation() }
        return try await withTaskCancellationHandler {
            try await withRPCCancellationHandler {
                try await task.value
            } onCancelRPC: {
                task.cancel()
            }
        } onCancel: {
            task.cancel()
        }
    }
}
