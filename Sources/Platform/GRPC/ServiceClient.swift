import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import ServiceLifecycle

/// Settings shared by every gRPC client of the platform.
public struct ServiceClientSettings: Sendable {
    /// Deadline of one call (kept by `ServiceClientTransport`).
    public var callTimeout: Duration
    /// The largest message sent or accepted (audio for speech endpoints is large).
    public var maxMessageBytes: Int

    public init(callTimeout: Duration = .seconds(10), maxMessageBytes: Int = 4 << 20) {
        self.callTimeout = callTimeout
        self.maxMessageBytes = maxMessageBytes
    }
}

public enum ServiceClientFactory {
    /// A client that spreads calls round-robin over the service's instances. An instance whose
    /// connection fails leaves the rotation until it reconnects, and a call that could not open
    /// a stream on an instance tries another (the transport does this for every call, before
    /// anything is sent). A call that was sent and then lost with its instance fails UNAVAILABLE;
    /// callers run the idempotent ones again with `retryingWhenUnavailable`. There is no
    /// retry policy in the service config: grpc-swift's retry executor buffers every request
    /// for a replay that almost never happens, about 0.05 ms of CPU per call (bench/README.md).
    public static func make(
        _ endpoints: ServiceEndpoints,
        settings: ServiceClientSettings = ServiceClientSettings(),
        interceptors: [any ClientInterceptor] = [RequestScopeClientInterceptor()],
        observers: [any ClientCallObserver] = []
    ) throws -> GRPCClient<ServiceClientTransport<HTTP2ClientTransport.Posix>> {
        var resolvers = NameResolverRegistry.defaults
        resolvers.registerFactory(ServiceEndpointsResolverFactory())
        let methodConfig = MethodConfig(
            names: [MethodConfig.Name(service: "")],
            maxRequestMessageBytes: settings.maxMessageBytes, maxResponseMessageBytes: settings.maxMessageBytes
        )
        let serviceConfig = ServiceConfig(methodConfig: [methodConfig], loadBalancingConfig: [.roundRobin])
        var config = HTTP2ClientTransport.Posix.Config.defaults
        config.backoff = .init(initial: .milliseconds(100), max: .seconds(2), multiplier: 1.6, jitter: 0.2)
        // A connection is pinged every two seconds; one whose instance does not answer within
        // two more (a frozen process keeps its sockets open) is closed, its calls fail
        // UNAVAILABLE and the balancer skips it, instead of calls waiting out their deadline. The
        // health watch (`InstanceHealthMonitor`, one second) notices a frozen instance sooner, on
        // a connection of its own; this one is slower to give up because closing it fails every
        // call it carries, and a busy machine can leave a healthy process a second behind (the
        // likeliest reason a drain test under CI load once lost the answers of four calls its
        // replica had finished). grpc-swift-nio-transport 2.9 restarts the ping timeout with each
        // ping, so the timeout is at most the interval: a longer one would never expire.
        config.connection.keepalive = .init(time: .seconds(2), timeout: .seconds(2), allowWithoutCalls: true)
        let http2 = try HTTP2ClientTransport.Posix(
            target: ServiceEndpointsTarget(endpoints),
            transportSecurity: .plaintext,
            config: config,
            resolverRegistry: resolvers,
            serviceConfig: serviceConfig
        )
        let transport = ServiceClientTransport(
            http2, callTimeout: settings.callTimeout, observers: observers,
            availability: endpoints.changes == nil ? nil : (endpoints.name, endpoints.availability)
        )
        return GRPCClient(transport: transport, interceptors: interceptors)
    }

    /// A client of a service in this process: the same interceptors and deadlines, no sockets.
    /// Message limits are the link's.
    public static func make(
        _ link: InProcessServiceLink,
        settings: ServiceClientSettings = ServiceClientSettings(),
        interceptors: [any ClientInterceptor] = [RequestScopeClientInterceptor()],
        observers: [any ClientCallObserver] = []
    ) -> GRPCClient<ServiceClientTransport<InProcessClientTransport>> {
        GRPCClient(
            transport: ServiceClientTransport(link.makeClientTransport(), callTimeout: settings.callTimeout, observers: observers),
            interceptors: interceptors
        )
    }
}

/// Runs a gRPC client's connections for as long as the process runs.
public struct GRPCClientService<Transport: ClientTransport>: Service {
    public let client: GRPCClient<Transport>

    public init(_ client: GRPCClient<Transport>) {
        self.client = client
    }

    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await client.runConnections()
        } onGracefulShutdown: {
            client.beginGracefulShutdown()
        }
    }
}

/// Runs a gRPC server until the process is asked to stop, then lets in-flight calls finish.
public struct GRPCServerService: Service {
    public let server: any GRPCServing

    public init(_ server: any GRPCServing) {
        self.server = server
    }

    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await server.serve()
        } onGracefulShutdown: {
            server.beginGracefulShutdown()
        }
    }
}
