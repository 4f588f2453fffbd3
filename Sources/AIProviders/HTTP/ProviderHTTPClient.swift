import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A request to a provider: where it goes, its head and its whole body.
struct ProviderHTTPRequest: Sendable {
    var origin: ProviderOrigin
    var head: HTTPRequestHead
    var body: ByteBuffer
}

/// A provider's answer: its head, and its body as it is read.
struct ProviderHTTPResponse: Sendable {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    var body: ProviderResponseBody
}

/// The platform's HTTP/1.1 client for provider calls: connection pools of their own on each event
/// loop, and each call on the pool of the loop it runs on.
///
/// Requests run on the event loop of their connection (`EventLoopTaskExecutor`); a provider call
/// from there takes a connection of the same loop, writes its request in one flush and is woken
/// by its answer's head on the thread it already runs on, with no task, lock or thread hand-off
/// of the client's own. AsyncHTTPClient, which this replaces for provider calls, made a task per
/// request (to register it for cancellation) and two writes per request: about 0.14 ms of the
/// streamed time to first byte on the benchmark machine (bench/README.md). What a provider call
/// needs is here: keep-alive pools bounded per origin with callers waiting in order, TLS (the
/// system's trust roots, SNI), connect and read timeouts, back-pressure on streamed bodies, a
/// request sent again once when a reused connection turns out closed before any answer.
public final class ProviderHTTPClient: Sendable {
    /// The pools by event loop; each is used on its own loop only.
    private let pools: [ObjectIdentifier: NIOLoopBoundBox<ProviderConnectionPool>]
    private let loops: [any EventLoop]

    /// - Parameters:
    ///   - maxConnectionsPerOrigin: in all, shared out among the loops' pools.
    ///   - readTimeout: the longest silence from a provider.
    ///   - tls: for https providers; the system's trust roots by default.
    public init(
        connectTimeout: Duration, readTimeout: Duration, maxConnectionsPerOrigin: Int, tls: TLSConfiguration = .makeClientConfiguration(),
        group: MultiThreadedEventLoopGroup = .singleton
    ) {
        let loops = Array(group.makeIterator())
        // Without trust roots on the machine, https providers fail their calls, not the start.
        let tls = try? NIOSSLContext(configuration: tls)
        let settings = ProviderConnectionPool.Settings(
            connectTimeout: TimeAmount(connectTimeout), readTimeout: TimeAmount(readTimeout),
            maxConnections: max(1, (maxConnectionsPerOrigin + loops.count - 1) / loops.count), tls: tls)
        var pools: [ObjectIdentifier: NIOLoopBoundBox<ProviderConnectionPool>] = [:]
        for loop in loops {
            pools[ObjectIdentifier(loop)] = .makeBoxSendingValue(ProviderConnectionPool(loop: loop, settings: settings), eventLoop: loop)
        }
        self.pools = pools
        self.loops = loops
    }

    /// Sends `request` and returns its answer once the head has come; cancelling the caller
    /// before then cancels the call.
    func execute(_ request: ProviderHTTPRequest) async throws -> ProviderHTTPResponse {
        let loop = currentLoop
        guard let pool = pools[ObjectIdentifier(loop)] else { throw ProviderHTTPError.shutDown }
        let answer = loop.makePromise(of: ProviderHTTPResponse.self)
        let call = NIOLoopBoundBox.makeBoxSendingValue(ProviderConnectionPool.Call(request: request, answer: answer), eventLoop: loop)
        return try await withTaskCancellationHandler {
            if loop.inEventLoop {
                pool.value.execute(call.value)
            } else {
                // Off the loops (a caller on an executor of its own): the call is made on one of them.
                loop.execute { pool.value.execute(call.value) }
            }
            return try await answer.futureResult.get()
        } onCancel: {
            loop.execute { pool.value.cancel(call.value) }
        }
    }

    /// The caller's event loop when it runs on one of this client's; otherwise any of them.
    private var currentLoop: any EventLoop {
        if let loop = MultiThreadedEventLoopGroup.currentEventLoop, pools[ObjectIdentifier(loop)] != nil { return loop }
        return loops[Int.random(in: loops.indices)]
    }

    /// Closes every connection; calls in flight fail. Safe to call more than once.
    public func shutdown() async {
        for loop in loops {
            guard let pool = pools[ObjectIdentifier(loop)] else { continue }
            try? await loop.submit { pool.value.shutdown() }.get()
        }
    }
}
