import Hummingbird
import HummingbirdAuth
import Logging
import NIOCore
import Platform
import Synchronization

/// Whether a request's client has gone away, as its connection told (`watchDeparture`).
final class ClientDeparture: Sendable {
    private let left = Atomic(false)

    fileprivate func happened() { left.store(true, ordering: .releasing) }

    /// What a call cut short ended with, as the request answers it: after the client left, the
    /// client's doing (499) whatever the call failed with — CANCELLED in process, an unexpected
    /// transport error over HTTP/2 — not a failure of the service; before, the error itself.
    func outcome(of error: any Error, logger: Logger) -> any Error {
        guard left.load(ordering: .acquiring) else { return error }
        logger.debug("the client left; its call ended", metadata: ["error": "\(String(reflecting: error))"])
        return APIError.clientClosedRequest
    }
}

/// Per-request state of the gateway: the request id, the caller's address and, once
/// authenticated, the caller's identity (hummingbird-auth's `AuthRequestContext`).
public struct GatewayRequestContext: AuthRequestContext {
    public var coreContext: CoreRequestContextStorage
    public var requestId: String = ""
    public var identity: Identity?
    /// For OpenAI-compatible requests made with an API key, once it is verified.
    public var apiKey: VerifiedAPIKey?
    public let peerAddress: String?
    /// The client's W3C `traceparent`, if it sent one.
    public var clientTraceparent: String?
    /// The trace id of `clientTraceparent` (`00-<trace id>-<span id>-<flags>`), if well formed.
    public var clientTraceId: String? {
        clientTraceparent.flatMap(Self.traceID(inTraceparent:))
    }

    /// The trace id of a W3C `traceparent` header, if well formed.
    static func traceID(inTraceparent header: String) -> String? {
        let parts = header.split(separator: "-")
        guard parts.count >= 4, parts[1].utf8.count == 32,
              parts[1].utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }),
              parts[1] != "00000000000000000000000000000000" else { return nil }
        return String(parts[1])
    }

    /// The client's connection, to notice when the client goes away.
    let channel: any Channel
    /// The largest request body accepted (413 beyond it).
    public var maxUploadSize: Int { 1 << 20 }

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.peerAddress = source.channel.remoteAddress?.ipAddress
        self.channel = source.channel
    }

    /// Runs `operation`, cancelling it if the client goes away before it is done: a paid call
    /// must not go on for nobody. The usage record then says 499, and so does this request's
    /// answer (for the metrics and the access log, `ClientDeparture.outcome`). The task runs on
    /// the connection's event loop, as the request does.
    func cancellingWhenClientLeaves<Value: Sendable>(_ operation: @escaping @Sendable () async throws -> Value) async throws -> Value {
        let task = Task.onCurrentLoop { try await operation() }
        let departure = await watchDeparture { task.cancel() }
        do {
            return try await task.valueCancelledWithCaller
        } catch {
            throw departure.outcome(of: error, logger: logger)
        }
    }

    /// Runs `action` if the client goes away (`whenClientLeaves`), and answers what tells later
    /// whether it did.
    func watchDeparture(_ action: @escaping @Sendable () -> Void) async -> ClientDeparture {
        let departure = ClientDeparture()
        await whenClientLeaves {
            departure.happened()
            action()
        }
        return departure
    }

    /// Runs `action` if the client goes away (closes its side or the connection) before this
    /// request's response has ended, at once if it already has. Unlike Hummingbird's inbound-close
    /// handler, this does not consume the connection's inbound stream, so keep-alive survives.
    func whenClientLeaves(_ action: @escaping @Sendable () -> Void) async {
        let channel = self.channel
        // The test router has no HTTP pipeline: nothing to watch there.
        if channel.eventLoop.inEventLoop {
            try? channel.pipeline.syncOperations.handler(type: RequestPartsWatch.self).whenClientLeaves(action)
            return
        }
        try? await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: RequestPartsWatch.self).whenClientLeaves(action)
        }.get()
    }

    /// The caller's identity; only routes behind `AuthenticationMiddleware` reach a handler without one.
    public func requireIdentity() throws -> Identity {
        guard let identity else { throw APIError.unauthenticated("missing or invalid access token") }
        return identity
    }
}
