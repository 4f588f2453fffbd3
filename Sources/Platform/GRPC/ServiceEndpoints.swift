import GRPCCore
import GRPCNIOTransportCore
import NIOCore
import NIOPosix

/// The instances of one service that a client may call. The set is asked for again whenever
/// the client reconnects, so a source backed by DNS or a registry can change at run time.
public struct ServiceEndpoints: Sendable, CustomStringConvertible {
    public let name: String
    private let resolve: @Sendable () async throws -> [GRPCNIOTransportCore.SocketAddress]
    private let describe: String

    public init(
        name: String,
        describedAs description: String,
        resolve: @escaping @Sendable () async throws -> [GRPCNIOTransportCore.SocketAddress]
    ) {
        self.name = name
        self.describe = description
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
        let names = AsyncThrowingStream<NameResolutionResult, any Error> {
            let addresses = try await endpoints.addresses()
            return NameResolutionResult(endpoints: addresses.map { Endpoint(addresses: [$0]) }, serviceConfig: nil)
        }
        return NameResolver(names: RPCAsyncSequence(wrapping: names), updateMode: .pull)
    }
}
