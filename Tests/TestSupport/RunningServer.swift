import Hummingbird
import NIOCore

/// A test server started on a free port: `make` builds the application with the
/// `onServerRunning` it is given; the application runs in `task` until it is cancelled.
public struct RunningServer: Sendable {
    public let port: Int
    public let task: Task<Void, Never>

    public struct StartFailed: Error {}

    public static func start<App: ApplicationProtocol>(
        _ make: (_ onServerRunning: @escaping @Sendable (any Channel) async -> Void) -> App
    ) async throws -> RunningServer {
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int?.self)
        let app = make { channel in
            portContinuation.yield(channel.localAddress?.port)
            portContinuation.finish()
        }
        let task = Task {
            try? await app.run()
            portContinuation.finish()
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() ?? nil else {
            task.cancel()
            throw StartFailed()
        }
        return RunningServer(port: port, task: task)
    }
}
