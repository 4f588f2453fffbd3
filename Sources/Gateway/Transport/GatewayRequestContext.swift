import Hummingbird
import Logging
import NIOCore

/// Per-request state of the gateway: the request id, the caller's address and, once
/// authenticated, the caller's identity.
public struct GatewayRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var requestId: String = ""
    public var identity: Identity?
    /// For AK/SK-signed requests, once the signature is verified.
    public var signedCaller: SignedCaller?
    public let peerAddress: String?
    /// The largest request body accepted (413 beyond it).
    public var maxUploadSize: Int { 1 << 20 }

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.peerAddress = source.channel.remoteAddress?.ipAddress
    }

    /// The caller's identity; only routes behind `AuthenticationMiddleware` reach a handler without one.
    public func requireIdentity() throws -> Identity {
        guard let identity else { throw APIError.unauthenticated("missing or invalid access token") }
        return identity
    }
}
