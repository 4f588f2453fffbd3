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
    /// Methods never retried, because a call that failed on the way back may already have had its
    /// effect (an AI provider called and billed).
    public var nonIdempotentMethods: [MethodDescriptor]

    public init(callTimeout: Duration = .seconds(10), maxMessageBytes: Int = 4 << 20, nonIdempotentMethods: [MethodDescriptor] = []) {
        self.callTimeout = callTimeout
        self.maxMessageBytes = maxMessageBytes
        self.nonIdempotentMethods = nonIdempotentMethods
    }
}

public enum ServiceClientFactory {
    /// A client that spreads calls round-robin over the service's instances. An instance whose
    /// connection fails leaves the rotation until it reconnects; a call that could not reach an
    /// instance is retried on another.
    public static func make(
        _ endpoints: ServiceEndpoints,
        settings: ServiceClientSettings = ServiceClientSettings(),
        interceptors: [any ClientInterceptor] = [RequestScopeClientInterceptor()]
    ) throws -> GRPCClient<ServiceClientTransport> {
        var resolvers = NameResolverRegistry.defaults
        resolvers.registerFactory(ServiceEndpointsResolverFactory())
        let retry = RetryPolicy(
            maxAttempts: 3,
            initialBackoff: .milliseconds(20),
            maxBackoff: .milliseconds(200),
            backoffMultiplier: 2,
            retryableStatusCodes: [.unavailable]
        )
        var methodConfigs = [
            MethodConfig(
                names: [MethodConfig.Name(service: "")],
                maxRequestMessageBytes: settings.maxMessageBytes, maxResponseMessageBytes: settings.maxMessageBytes,
                executionPolicy: .retry(retry)
            )
        ]
        if !settings.nonIdempotentMethods.isEmpty {
            // The most specific name wins, so these override the service-wide entry above.
            methodConfigs.append(MethodConfig(
                names: settings.nonIdempotentMethods.map { MethodConfig.Name(service: $0.service.fullyQualifiedService, method: $0.method) },
                maxRequestMessageBytes: settings.maxMessageBytes, maxResponseMessageBytes: settings.maxMessageBytes
            ))
        }
        let serviceConfig = ServiceConfig(methodConfig: methodConfigs, loadBalancingConfig: [.roundRobin])
        var config = HTTP2ClientTransport.Posix.Config.defaults
        config.backoff = .init(initial: .milliseconds(100), max: .seconds(2), multiplier: 1.6, jitter: 0.2)
        let http2 = try HTTP2ClientTransport.Posix(
            target: ServiceEndpointsTarget(endpoints),
            transportSecurity: .plaintext,
            config: config,
            resolverRegistry: resolvers,
            serviceConfig: serviceConfig
        )
        return GRPCClient(transport: ServiceClientTransport(http2, callTimeout: settings.callTimeout), interceptors: interceptors)
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
public struct GRPCServerService<Transport: ServerTransport>: Service {
    public let server: GRPCServer<Transport>

    public init(_ server: GRPCServer<Transport>) {
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
