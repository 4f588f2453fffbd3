import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Where a provider is: the connections of a pool are kept per origin.
struct ProviderOrigin: Hashable, Sendable {
    var isTLS: Bool
    var host: String
    var port: Int
}

/// The connections to providers of one event loop, used on that loop only: idle ones kept for
/// the next call, at most `maxConnections` per origin, callers beyond that waiting in order.
final class ProviderConnectionPool {
    struct Settings: Sendable {
        var connectTimeout: TimeAmount
        /// The longest silence while waiting for or reading an answer; idle connections are
        /// closed after it too.
        var readTimeout: TimeAmount
        var maxConnections: Int
        var tls: NIOSSLContext?
    }

    /// A call from the moment it is handed to the pool until its answer's head.
    final class Call {
        let request: ProviderHTTPRequest
        let answer: EventLoopPromise<ProviderHTTPResponse>
        var connection: ProviderConnection?
        var cancelled = false
        var retried = false

        init(request: ProviderHTTPRequest, answer: EventLoopPromise<ProviderHTTPResponse>) {
            self.request = request
            self.answer = answer
        }
    }

    let loop: any EventLoop
    private let settings: Settings
    private var idle: [ProviderOrigin: [ProviderConnection]] = [:]
    /// Connections per origin: idle, busy and being opened.
    private var open: [ProviderOrigin: Int] = [:]
    private var waiting: [ProviderOrigin: CircularBuffer<Call>] = [:]
    private var all: [ObjectIdentifier: ProviderConnection] = [:]
    private var isShutDown = false

    init(loop: any EventLoop, settings: Settings) {
        self.loop = loop
        self.settings = settings
    }

    /// Sends `call.request` on an idle connection, a new one or the first one released.
    func execute(_ call: Call) {
        guard !isShutDown else { return call.answer.fail(ProviderHTTPError.shutDown) }
        guard !call.cancelled else { return call.answer.fail(CancellationError()) }
        let origin = call.request.origin
        while let connection = idle[origin]?.popLast() {
            if connection.isUsable { return send(call, on: connection, reused: true) }
        }
        if open[origin, default: 0] < settings.maxConnections {
            connect(origin, for: call)
        } else {
            waiting[origin, default: CircularBuffer()].append(call)
        }
    }

    /// The caller left before the answer's head: a waiting call is dropped, a sent one closes its
    /// connection.
    func cancel(_ call: Call) {
        call.cancelled = true
        if let connection = call.connection {
            connection.cancel()
        } else if var queue = waiting[call.request.origin], let index = queue.firstIndex(where: { $0 === call }) {
            queue.remove(at: index)
            waiting[call.request.origin] = queue
            call.answer.fail(CancellationError())
        }
    }

    func shutdown() {
        isShutDown = true
        for queue in waiting.values {
            for call in queue { call.answer.fail(ProviderHTTPError.shutDown) }
        }
        waiting = [:]
        idle = [:]
        for connection in all.values { connection.close() }
    }

    private func send(_ call: Call, on connection: ProviderConnection, reused: Bool) {
        call.connection = connection
        let answer = loop.makePromise(of: ProviderHTTPResponse.self)
        connection.start(call.request, answer: answer)
        answer.futureResult.assumeIsolated().whenComplete { [self] result in
            call.connection = nil
            switch result {
            case .success(let response):
                call.answer.succeed(response)
            case .failure(ProviderHTTPError.connectionClosed(beforeAnswer: true)) where reused && !call.retried && !call.cancelled:
                // The provider closed the idle connection as the request went out: nothing of it
                // was answered, so it goes again, once, on a connection of its own.
                call.retried = true
                execute(call)
            case .failure(let error):
                call.answer.fail(call.cancelled ? CancellationError() : error)
            }
        }
    }

    private func connect(_ origin: ProviderOrigin, for call: Call) {
        open[origin, default: 0] += 1
        let settings = self.settings
        let pool = NIOLoopBound(self, eventLoop: loop)
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(settings.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if origin.isTLS {
                        guard let tls = settings.tls else { throw ProviderHTTPError.invalidURL }
                        // No SNI for an IP address (TLS forbids it); the certificate chain is still checked.
                        let hostname = origin.host.isIPAddress ? nil : origin.host
                        try pipeline.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: hostname))
                    }
                    try pipeline.addHTTPClientHandlers()
                    try pipeline.addHandler(ProviderConnection(
                        origin: origin, readTimeout: settings.readTimeout,
                        released: { pool.value.released($0) },
                        closed: { pool.value.closed($0) }
                    ))
                }
            }
        bootstrap.connect(host: origin.host, port: origin.port).assumeIsolated().flatMapThrowing { channel in
            try channel.pipeline.syncOperations.handler(type: ProviderConnection.self)
        }.whenComplete { [self] result in
            switch result {
            case .success(let connection):
                all[ObjectIdentifier(connection)] = connection
                if isShutDown || call.cancelled {
                    connection.close()
                    call.answer.fail(isShutDown ? ProviderHTTPError.shutDown : CancellationError())
                } else {
                    send(call, on: connection, reused: false)
                }
            case .failure(let error):
                open[origin, default: 1] -= 1
                call.answer.fail(Self.connectFailure(error))
                startWaiting(origin)
            }
        }
    }

    private func released(_ connection: ProviderConnection) {
        guard !isShutDown else { return connection.close() }
        if let call = nextWaiting(connection.origin) {
            send(call, on: connection, reused: true)
        } else {
            idle[connection.origin, default: []].append(connection)
        }
    }

    private func closed(_ connection: ProviderConnection) {
        all[ObjectIdentifier(connection)] = nil
        open[connection.origin, default: 1] -= 1
        idle[connection.origin]?.removeAll { $0 === connection }
        startWaiting(connection.origin)
    }

    /// A connection's place came free: the first waiting call opens a new one.
    private func startWaiting(_ origin: ProviderOrigin) {
        guard !isShutDown, open[origin, default: 0] < settings.maxConnections, let call = nextWaiting(origin) else { return }
        connect(origin, for: call)
    }

    private func nextWaiting(_ origin: ProviderOrigin) -> Call? {
        while let call = waiting[origin]?.popFirst() {
            if !call.cancelled { return call }
        }
        return nil
    }

    private static func connectFailure(_ error: any Error) -> any Error {
        if case ChannelError.connectTimeout = error { return ProviderHTTPError.connectTimeout }
        return error
    }
}

extension String {
    /// An IPv4 or IPv6 literal (which TLS's server name must not be).
    var isIPAddress: Bool {
        (try? SocketAddress(ipAddress: self, port: 0)) != nil
    }
}
