import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization
import Testing
import TestSupport

@testable import AIProviders

/// The provider client against a small HTTP server on loopback whose behaviour each test picks.
@Suite("provider HTTP client")
struct ProviderHTTPClientTests {
    @Test func keepsTheConnectionForTheNextCall() async throws {
        try await withServer(.answer("hello")) { server, client in
            for _ in 0..<3 {
                let response = try await client.execute(server.request())
                #expect(response.status == .ok)
                #expect(String(buffer: try await response.body.collect(upTo: 1 << 20)) == "hello")
            }
            #expect(server.counters.accepted == 1)
            #expect(server.counters.requests == 3)
        }
    }

    @Test func anAnswerWithConnectionCloseIsNotReused() async throws {
        try await withServer(.answer("bye", connectionClose: true)) { server, client in
            for _ in 0..<2 {
                let response = try await client.execute(server.request())
                #expect(String(buffer: try await response.body.collect(upTo: 1 << 20)) == "bye")
            }
            #expect(server.counters.accepted == 2)
        }
    }

    @Test func aReusedConnectionClosedUnderTheRequestIsRetriedOnce() async throws {
        // The server drops every connection at its second request, unanswered: the call goes
        // again on a new connection, as when a provider closes an idle connection at that moment.
        try await withServer(.answer("again", dropSecondRequest: true)) { server, client in
            _ = try await client.execute(server.request()).body.collect(upTo: 1 << 20)
            let response = try await client.execute(server.request())
            #expect(String(buffer: try await response.body.collect(upTo: 1 << 20)) == "again")
            #expect(server.counters.accepted == 2)
        }
    }

    @Test func aSilentProviderTimesOut() async throws {
        try await withServer(.silent, readTimeout: .milliseconds(200)) { server, client in
            await #expect(throws: ProviderHTTPError.readTimeout) {
                _ = try await client.execute(server.request())
            }
        }
    }

    @Test func aConnectionKeptIdleGivesTheNextCallTheWholeReadTimeout() async throws {
        // Idle for half the read timeout, then a call whose answer takes more than what is left
        // of it: the silence counts from the request, not from the last byte of the previous answer.
        // (A machine so loaded that the pause outlasts the timeout drops the idle connection, and
        // the call goes on a new one: then this proves less, but does not fail.)
        try await withServer(.answer("late"), readTimeout: .seconds(3)) { server, client in
            _ = try await client.execute(server.request()).body.collect(upTo: 1 << 20)
            try await Task.sleep(for: .milliseconds(1500))
            server.behaviour = .answer("late", delay: .seconds(2))
            let response = try await client.execute(server.request())
            #expect(String(buffer: try await response.body.collect(upTo: 1 << 20)) == "late")
        }
    }

    @Test func cancellingTheCallerClosesTheConnection() async throws {
        try await withServer(.silent) { server, client in
            let call = Task { try await client.execute(server.request()) }
            #expect(await server.waitUntil { $0.requests == 1 })
            call.cancel()
            await #expect(throws: CancellationError.self) { _ = try await call.value }
            #expect(await server.waitUntil { $0.closed == 1 })
        }
    }

    @Test func aBodyLeftUnreadClosesTheConnection() async throws {
        try await withServer(.stream(totalBytes: 8 << 20)) { server, client in
            do {
                let response = try await client.execute(server.request())
                let iterator = response.body.makeAsyncIterator()
                _ = try await iterator.next()
            }
            #expect(await server.waitUntil { $0.closed == 1 })
            // The next call is on a new connection.
            server.behaviour = .answer("fresh")
            let response = try await client.execute(server.request())
            #expect(String(buffer: try await response.body.collect(upTo: 1 << 20)) == "fresh")
            #expect(server.counters.accepted == 2)
        }
    }

    @Test func aSlowReaderHoldsTheProviderBack() async throws {
        let total = 48 << 20
        // The pause outlasts the read timeout: a silence while the reader is behind is not the provider's.
        try await withServer(.stream(totalBytes: total), readTimeout: .seconds(1)) { server, client in
            let response = try await client.execute(server.request())
            let iterator = response.body.makeAsyncIterator()
            var read = try await iterator.next()?.readableBytes ?? 0
            try await Task.sleep(for: .milliseconds(1300))
            // Socket buffers take a few MB at most; the rest waits for the reader.
            #expect(server.counters.bytesWritten < total / 2)
            while let buffer = try await iterator.next() { read += buffer.readableBytes }
            #expect(read == total)
            #expect(server.counters.bytesWritten == total)
        }
    }

    @Test func callsBeyondTheConnectionLimitWaitTheirTurn() async throws {
        try await withServer(.answer("one at a time", delay: .milliseconds(50)), maxConnections: 1) { server, client in
            try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<4 {
                    group.addTask { String(buffer: try await client.execute(server.request()).body.collect(upTo: 1 << 20)) }
                }
                for try await answer in group { #expect(answer == "one at a time") }
            }
            #expect(server.counters.accepted == 1)
            #expect(server.counters.requests == 4)
        }
    }

    @Test func httpsWithTheServersCertificateChecked() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("provider-tls-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let certificates = try TestCertificates(in: folder)
        var trusted = TLSConfiguration.makeClientConfiguration()
        trusted.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(certificates.authority))
        try await withServer(.answer("secret"), tls: certificates, clientTLS: trusted) { server, client in
            let response = try await client.execute(server.request())
            #expect(String(buffer: try await response.body.collect(upTo: 1 << 20)) == "secret")
        }
        // A client that does not trust the server's CA refuses it.
        try await withServer(.answer("secret"), tls: certificates) { server, client in
            await #expect(throws: (any Error).self) { _ = try await client.execute(server.request()) }
            #expect(server.counters.requests == 0)
        }
    }

    @Test func endpointsKeepTheBasePathAndQuery() throws {
        let endpoint = try #require(ProviderEndpoint(
            baseURL: "https://example.openai.azure.com/openai/deployments/gpt", queryItems: [.init(name: "api-version", value: "2024-06-01")]))
        #expect(endpoint.origin == ProviderOrigin(isTLS: true, host: "example.openai.azure.com", port: 443))
        #expect(endpoint.hostHeader == "example.openai.azure.com")
        #expect(endpoint.target("chat/completions") == "/openai/deployments/gpt/chat/completions?api-version=2024-06-01")
        let local = try #require(ProviderEndpoint(baseURL: "http://[::1]:8080/v1/", queryItems: []))
        #expect(local.origin == ProviderOrigin(isTLS: false, host: "::1", port: 8080))
        #expect(local.hostHeader == "[::1]:8080")
        #expect(local.target("embeddings") == "/v1/embeddings")
        #expect(ProviderEndpoint(baseURL: "ftp://example.com", queryItems: []) == nil)
        #expect(ProviderEndpoint(baseURL: "not a url", queryItems: []) == nil)
    }
}

// MARK: - A server whose behaviour the test picks

private final class TestHTTPServer: Sendable {
    enum Behaviour: Sendable {
        case answer(String, connectionClose: Bool = false, dropSecondRequest: Bool = false, delay: Duration = .zero)
        case silent
        case stream(totalBytes: Int)
    }

    struct Counters: Sendable {
        var accepted = 0
        var closed = 0
        var requests = 0
        var bytesWritten = 0
    }

    private struct State {
        var behaviour: Behaviour
        var counters = Counters()
    }

    private let state: Mutex<State>
    let port: Int
    let isTLS: Bool
    private let channel: any Channel

    var behaviour: Behaviour {
        get { state.withLock { $0.behaviour } }
        set { state.withLock { $0.behaviour = newValue } }
    }

    var counters: Counters { state.withLock { $0.counters } }

    func count(_ change: (inout Counters) -> Void) {
        state.withLock { change(&$0.counters) }
    }

    func waitUntil(_ condition: (Counters) -> Bool) async -> Bool {
        for _ in 0..<500 {
            if condition(counters) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition(counters)
    }

    func request() -> ProviderHTTPRequest {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "127.0.0.1:\(port)")
        headers.add(name: "Content-Length", value: "2")
        return ProviderHTTPRequest(
            origin: ProviderOrigin(isTLS: isTLS, host: "127.0.0.1", port: port),
            head: HTTPRequestHead(version: .http1_1, method: .POST, uri: "/v1/chat/completions", headers: headers),
            body: ByteBuffer(string: "{}"))
    }

    init(_ behaviour: Behaviour, tls: TestCertificates?, group: any EventLoopGroup) async throws {
        let state = Mutex(State(behaviour: behaviour))
        self.state = state
        let context = try tls.map { certificates in
            try NIOSSLContext(configuration: .makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(certificates.serverCertificate).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: certificates.serverKey, format: .pem))))
        }
        isTLS = tls != nil
        // The handler reaches the counters through a box made before `self` is complete.
        let box = ServerBox()
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(TestServerHandler(box: box))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = channel.localAddress?.port ?? 0
        box.server.withLock { $0 = self }
    }

    func close() async {
        try? await channel.close()
    }
}

private final class ServerBox: Sendable {
    let server = Mutex<TestHTTPServer?>(nil)
    var value: TestHTTPServer? { server.withLock { $0 } }
}

private final class TestServerHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let box: ServerBox
    private var requestsOnConnection = 0

    init(box: ServerBox) {
        self.box = box
    }

    func channelActive(context: ChannelHandlerContext) {
        box.value?.count { $0.accepted += 1 }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        box.value?.count { $0.closed += 1 }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = unwrapInboundIn(data), let server = box.value else { return }
        requestsOnConnection += 1
        server.count { $0.requests += 1 }
        switch server.behaviour {
        case .silent:
            return
        case .answer(let text, let connectionClose, let dropSecondRequest, let delay):
            if dropSecondRequest, requestsOnConnection == 2 {
                context.close(promise: nil)
                return
            }
            let (seconds, attoseconds) = delay.components
            context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)) {
                var headers: HTTPHeaders = ["Content-Length": "\(text.utf8.count)"]
                if connectionClose { headers.add(name: "Connection", value: "close") }
                context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
                context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
                context.writeAndFlush(self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                    if connectionClose { context.close(promise: nil) }
                }
            }
        case .stream(let total):
            let head = HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Content-Length": "\(total)"])
            context.writeAndFlush(wrapOutboundOut(.head(head)), promise: nil)
            writeChunks(context: context, remaining: total, server: server)
        }
    }

    /// 64 KiB at a time, the next one once the last is written: the writes stop when the client
    /// stops reading.
    private func writeChunks(context: ChannelHandlerContext, remaining: Int, server: TestHTTPServer) {
        guard remaining > 0 else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            return
        }
        let size = min(64 << 10, remaining)
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(repeating: 0x61, count: size))))).assumeIsolated().whenComplete { result in
            guard case .success = result else { return }
            server.count { $0.bytesWritten += size }
            self.writeChunks(context: context, remaining: remaining - size, server: server)
        }
    }
}

private func withServer(
    _ behaviour: TestHTTPServer.Behaviour, readTimeout: Duration = .seconds(10), maxConnections: Int = 8,
    tls: TestCertificates? = nil, clientTLS: TLSConfiguration = .makeClientConfiguration(),
    _ body: (TestHTTPServer, ProviderHTTPClient) async throws -> Void
) async throws {
    let serverGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let server = try await TestHTTPServer(behaviour, tls: tls, group: serverGroup)
    let client = ProviderHTTPClient(
        connectTimeout: .seconds(2), readTimeout: readTimeout, maxConnectionsPerOrigin: maxConnections, tls: clientTLS, group: clientGroup)
    do {
        try await body(server, client)
    } catch {
        await client.shutdown()
        await server.close()
        try? await clientGroup.shutdownGracefully()
        try? await serverGroup.shutdownGracefully()
        throw error
    }
    await client.shutdown()
    await server.close()
    try await clientGroup.shutdownGracefully()
    try await serverGroup.shutdownGracefully()
}
