import AsyncHTTPClient
import NIOCore
import NIOPosix

/// One HTTP client per event loop, each keeping its connections on its own loop, and the one of
/// the caller's loop for each call.
///
/// A request runs on the event loop of its client's connection (`EventLoopTaskExecutor`), and a
/// provider call made from there should use a connection of the same loop: its answer then wakes
/// the request where it already runs. A single client only prefers the caller's loop, and takes
/// an idle connection of another loop when the preferred one has none (with one connection, every
/// other call): each such call crossed threads twice, 0.3 ms a call on the benchmark machine.
public final class LoopLocalHTTPClients: Sendable {
    private let clients: [ObjectIdentifier: HTTPClient]
    private let fallback: [HTTPClient]

    /// `maxConnectionsPerHost` in all, shared out among the loops' clients.
    public init(configuration: HTTPClient.Configuration, maxConnectionsPerHost: Int, group: MultiThreadedEventLoopGroup = .singleton) {
        var clients: [ObjectIdentifier: HTTPClient] = [:]
        var all: [HTTPClient] = []
        let loops = Array(group.makeIterator())
        var configuration = configuration
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = max(1, (maxConnectionsPerHost + loops.count - 1) / loops.count)
        for loop in loops {
            let client = HTTPClient(eventLoopGroupProvider: .shared(loop), configuration: configuration)
            clients[ObjectIdentifier(loop)] = client
            all.append(client)
        }
        self.clients = clients
        self.fallback = all
    }

    /// The client of the caller's event loop; off the loops, any.
    public var current: HTTPClient {
        if let loop = MultiThreadedEventLoopGroup.currentEventLoop, let client = clients[ObjectIdentifier(loop)] {
            return client
        }
        return fallback[Int.random(in: fallback.indices)]
    }

    public func shutdown() async throws {
        var failure: (any Error)?
        for client in fallback {
            do { try await client.shutdown() } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
    }
}
