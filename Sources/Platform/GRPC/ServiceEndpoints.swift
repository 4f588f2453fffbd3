import GRPCCore
import GRPCNIOTransportCore
import NIOCore
import NIOPosix

/// The instances of one service that a client may call. Without `changes` the set is asked for
/// again whenever the client reconnects; with it (DNS, a registry) the client's set is replaced
/// each time the source signals a change and answers a different set.
public struct ServiceEndpoints: Sendable, CustomStringConvertible {
    public let name: String
    private let resolve: @Sendable () async throws -> [GRPCNIOTransportCore.SocketAddress]
    private let describe: String
    /// A signal whenever the set may have changed; nil for a set asked for on reconnection only.
    let changes: (@Sendable () -> AsyncStream<Void>)?
    /// Whether the last lookup of a client's resolver found any instance (pushed sets only).
    public let availability = EndpointAvailability()

    public init(
        name: String,
        describedAs description: String,
        changes: (@Sendable () -> AsyncStream<Void>)? = nil,
        resolve: @escaping @Sendable () async throws -> [GRPCNIOTransportCore.SocketAddress]
    ) {
        self.name = name
        self.describe = description
        self.changes = changes
        self.resolve = resolve
    }

    /// Fixed `host:port` pairs; host names are looked up again on every resolution. A name that
    /// does not resolve leaves out that instance only.
    public static func fixed(name: String, _ addresses: [HostPort]) -> ServiceEndpoints {
        ServiceEndpoints(name: name, describedAs: addresses.map(\.description).joined(separator: ",")) {
            let results = await withTaskGroup(of: Result<GRPCNIOTransportCore.SocketAddress, any Error>.self) { group in
                for address in addresses {
                    group.addTask {
                        do { return .success(try await .resolving(address)) } catch { return .failure(error) }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            let resolved = results.compactMap { try? $0.get() }
            if resolved.isEmpty, case .failure(let error)? = results.first { throw error }
            return resolved
        }
    }

    public var description: String { "\(name)(\(describe))" }

    public func addresses() async throws -> [GRPCNIOTransportCore.SocketAddress] {
        try await resolve()
    }

}

extension GRPCNIOTransportCore.SocketAddress {
    /// The IPv4 or IPv6 address of `address`, its host name looked up (IP literals as they are).
    public static func resolving(_ address: HostPort) async throws -> GRPCNIOTransportCore.SocketAddress {
        // getaddrinfo blocks, so it runs on NIO's thread pool rather than a cooperative thread.
        let resolved = try await NIOThreadPool.singleton.runIfActive {
            try NIOCore.SocketAddress.makeAddressResolvingHost(address.host, port: address.port)
        }
        switch resolved {
        case .v4:
            return .ipv4(host: resolved.ipAddress ?? address.host, port: address.port)
        case .v6:
            return .ipv6(host: resolved.ipAddress ?? address.host, port: address.port)
        case .unixDomainSocket:
            throw RPCError(code: .invalidArgument, message: "\(address) is not an IP address")
        }
    }
}

/// Lets a gRPC client connect to a `ServiceEndpoints`.
public struct ServiceEndpointsTarget: ResolvableTarget, Sendable {
    public var endpoints: ServiceEndpoints

    public init(_ endpoints: ServiceEndpoints) {
        self.endpoints = endpoints
    }
}

public struct ServiceEndpointsResolverFactory: NameResolverFactory, Sendable {
    public typealias Target = ServiceEndpointsTarget

    public init() {}

    public func resolver(for target: ServiceEndpointsTarget) -> NameResolver {
        let endpoints = target.endpoints
        guard let changes = endpoints.changes else {
            let names = AsyncThrowingStream<NameResolutionResult, any Error> {
                let addresses = try await endpoints.addresses()
                return NameResolutionResult(endpoints: addresses.map { Endpoint(addresses: [$0]) }, serviceConfig: nil)
            }
            return NameResolver(names: RPCAsyncSequence(wrapping: names), updateMode: .pull)
        }
        // Pushed: a new set goes to the load balancer, which opens connections to new instances
        // and closes those of instances gone, letting their calls in flight finish. A failed
        // lookup keeps the set the client has.
        let names = AsyncThrowingStream<NameResolutionResult, any Error> { continuation in
            let task = Task {
                var last: [GRPCNIOTransportCore.SocketAddress]?
                for await _ in changes() {
                    let addresses: [GRPCNIOTransportCore.SocketAddress]
                    do {
                        addresses = try await endpoints.addresses()
                        endpoints.availability.record(instances: addresses.count)
                    } catch {
                        endpoints.availability.record(instances: nil, failure: error)
                        continue
                    }
                    guard addresses != last else { continue }
                    last = addresses
                    continuation.yield(NameResolutionResult(endpoints: addresses.map { Endpoint(addresses: [$0]) }, serviceConfig: nil))
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
        return NameResolver(names: RPCAsyncSequence(wrapping: names), updateMode: .push)
    }
}
