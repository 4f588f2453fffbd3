import AISaaSProtos
import GRPCCore
import GRPCNIOTransportCore
import GRPCNIOTransportHTTP2

/// The health of one instance of a service, as seen from a caller.
public struct InstanceHealth: Sendable, Equatable {
    public var service: String
    public var address: String
    public var serving: Bool
    /// `SERVING`, `NOT_SERVING`, or why the check failed.
    public var detail: String
}

public enum HealthProbe {
    /// Asks every instance of `endpoints` for its health, each on a connection of its own, so
    /// that one failing instance is named rather than hidden behind load balancing.
    public static func check(_ endpoints: ServiceEndpoints, timeout: Duration = .seconds(1)) async -> [InstanceHealth] {
        let addresses: [GRPCNIOTransportCore.SocketAddress]
        do {
            addresses = try await endpoints.addresses()
        } catch {
            return [InstanceHealth(service: endpoints.name, address: endpoints.description, serving: false, detail: "cannot resolve: \(error)")]
        }
        if addresses.isEmpty {
            return [InstanceHealth(service: endpoints.name, address: endpoints.description, serving: false, detail: "no instances")]
        }
        return await withTaskGroup(of: InstanceHealth.self) { group in
            for address in addresses {
                group.addTask { await check(address, service: endpoints.name, timeout: timeout) }
            }
            var results: [InstanceHealth] = []
            for await result in group { results.append(result) }
            return results.sorted { $0.address < $1.address }
        }
    }

    private static func check(_ address: GRPCNIOTransportCore.SocketAddress, service: String, timeout: Duration) async -> InstanceHealth {
        let label = address.ipv4.map { "\($0.host):\($0.port)" } ?? address.ipv6.map { "[\($0.host)]:\($0.port)" } ?? "\(address)"
        do {
            let single = ServiceEndpoints(name: service, describedAs: label) { [address] }
            let transport = try HTTP2ClientTransport.Posix(
                target: ServiceEndpointsTarget(single),
                transportSecurity: .plaintext,
                resolverRegistry: {
                    var registry = NameResolverRegistry.defaults
                    registry.registerFactory(ServiceEndpointsResolverFactory())
                    return registry
                }()
            )
            let status = try await withGRPCClient(transport: transport) { client in
                var options = CallOptions.defaults
                options.timeout = timeout
                let health = Grpc_Health_V1_Health.Client(wrapping: client)
                return try await health.check(.with { $0.service = "" }, options: options).status
            }
            return InstanceHealth(service: service, address: label, serving: status == .serving, detail: status.protocolName)
        } catch let error as RPCError {
            return InstanceHealth(service: service, address: label, serving: false, detail: "\(error.code): \(error.message)")
        } catch {
            return InstanceHealth(service: service, address: label, serving: false, detail: "\(error)")
        }
    }
}

extension Grpc_Health_V1_HealthCheckResponse.ServingStatus {
    /// The status as the health checking protocol spells it (`NOT_SERVING`).
    public var protocolName: String {
        switch self {
        case .serving: "SERVING"
        case .notServing: "NOT_SERVING"
        case .serviceUnknown: "SERVICE_UNKNOWN"
        case .unknown: "UNKNOWN"
        case .UNRECOGNIZED(let value): "UNRECOGNIZED(\(value))"
        }
    }
}
