import GRPCCore
import Synchronization

/// Lets calls in flight finish while their process shuts down.
///
/// When a server begins its graceful shutdown, grpc-swift's transport fires the RPC cancellation
/// handle of every open stream (the same signal as a client that went away), so handlers that
/// stop their work on it (ours do: a provider call must not outlive its caller) would abandon
/// every call in flight, and the callers would get errors for work they were promised. This
/// interceptor gives each call a cancellation handle of its own, for the handler and for the
/// producer of a streamed response alike, that follows the transport's except once `health`
/// says the process is shutting down. A client that leaves during the drain is then noticed
/// only when the answer cannot be written; the drain is bounded by the process's drain time.
public struct DrainingServerInterceptor: ServerInterceptor {
    let health: HealthStatus

    public init(health: HealthStatus) {
        self.health = health
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @concurrent @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        var response = try await shielded { handle in
            var context = context
            context.cancellation = handle
            return try await next(request, context)
        }
        if case .success(var contents) = response.accepted {
            let producer = contents.producer
            contents.producer = { writer in try await shielded { _ in try await producer(writer) } }
            response.accepted = .success(contents)
        }
        return response
    }

    /// Runs `body` under a cancellation handle that the transport's cancels, unless the process
    /// is draining by then.
    @concurrent private func shielded<Result: Sendable>(_ body: (ServerContext.RPCCancellationHandle) async throws -> Result) async throws -> Result {
        let link = Link()
        let health = self.health
        return try await withRPCCancellationHandler {
            try await withServerContextRPCCancellationHandle { own in
                link.attach(own)
                return try await body(own)
            }
        } onCancelRPC: {
            if !health.isShuttingDown { link.cancel() }
        }
    }

    /// The handle to forward a cancellation to, which may arrive before the handle exists.
    private final class Link: Sendable {
        private struct State {
            var handle: ServerContext.RPCCancellationHandle?
            var cancelled = false
        }

        private let state = Mutex(State())

        func attach(_ handle: ServerContext.RPCCancellationHandle) {
            let cancelled = state.withLock { state in
                state.handle = handle
                return state.cancelled
            }
            if cancelled { handle.cancel() }
        }

        func cancel() {
            let handle = state.withLock { state in
                state.cancelled = true
                return state.handle
            }
            handle?.cancel()
        }
    }
}
