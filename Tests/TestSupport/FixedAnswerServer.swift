import Hummingbird
import Logging
import NIOCore
import Synchronization

/// An HTTP server on 127.0.0.1 that answers every request with one status and JSON body, and
/// counts them: a cluster member in trouble (etcd answering 503 "no leader"), for instance.
public final class FixedAnswerServer: Sendable {
    public let port: Int
    public var endpoint: String { "http://127.0.0.1:\(port)" }
    private let served = Atomic<Int>(0)
    private let task: Task<Void, Never>

    public var requests: Int { served.load(ordering: .relaxed) }

    private init(port: Int, task: Task<Void, Never>) {
        self.port = port
        self.task = task
    }

    public static func start(status: Int, json: String) async throws -> FixedAnswerServer {
        var logger = Logger(label: "fixed-answer-server")
        logger.logLevel = .critical
        let box = Mutex<FixedAnswerServer?>(nil)
        let responder = CallbackResponder<BasicRequestContext> { _, _ in
            box.withLock { $0 }?.served.add(1, ordering: .relaxed)
            return Response(
                status: HTTPResponse.Status(code: status), headers: [.contentType: "application/json"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: json))
            )
        }
        let running = try await RunningServer.start { onServerRunning in
            Application(
                responder: responder,
                configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0), serverName: "fixed-answer"),
                onServerRunning: onServerRunning, logger: logger
            )
        }
        let server = FixedAnswerServer(port: running.port, task: running.task)
        box.withLock { $0 = server }
        return server
    }

    public func stop() async {
        task.cancel()
        await task.value
    }
}
