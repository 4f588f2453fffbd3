import GRPCCore
import Hummingbird
import Platform

/// The HTTP routes of a service added to the platform (by `aisaas scaffold service`), over a gRPC
/// client the gateway makes for it. The client's transport differs between `aisaas all`
/// (in-process) and separate processes (HTTP/2), hence the generic method.
public protocol AddedServiceRoutes: Sendable {
    /// Registers the routes, behind the gateway's JWT authentication.
    func register<Transport: ClientTransport>(client: GRPCClient<Transport>, on authenticated: RouterGroup<GatewayRequestContext>)
}

/// How the gateway reaches an added service, and what it serves of it.
public struct AddedServiceConnection: Sendable {
    public var connection: ServiceConnection
    public var routes: any AddedServiceRoutes
    public var callTimeout: Duration

    public init(connection: ServiceConnection, routes: any AddedServiceRoutes, callTimeout: Duration) {
        self.connection = connection
        self.routes = routes
        self.callTimeout = callTimeout
    }
}
