import AISaaSProtos
import GRPCCore
import GRPCNIOTransportCore
import GRPCNIOTransportHTTP2

/// One `grpc.health.v1.Health/Check` of one instance, for tools (`aisaas registry list --health`).
public enum HealthProbe {
    /// `SERVING`, `NOT_SERVING`, … or what went wrong.
    public static func status(of address: String, service: String, timeout: Duration = .seconds(3)) async -> String {
        guard let hostPort = HostPort(parsing: address) else { return "not host:port" }
        do {
            let target = try await GRPCNIOTransportCore.SocketAddress.resolving(hostPort)
            let single = ServiceEndpoints(name: "probe", describedAs: address) { [target] }
            var resolvers = NameResolverRegistry.defaults
            resolvers.registerFactory(ServiceEndpointsResolverFactory())
            let transport = try HTTP2ClientTransport.Posix(
                target: ServiceEndpointsTarget(single), transportSecurity: .plaintext, resolverRegistry: resolvers
            )
            return try await withGRPCClient(transport: transport) { client in
                var options = CallOptions.defaults
                options.timeout = timeout
                var request = Grpc_Health_V1_HealthCheckRequest()
                request.service = service
                let answer = try await Grpc_Health_V1_Health.Client(wrapping: client).check(request, options: options)
                return answer.status.protocolName
            }
        } catch let error as RPCError {
            return "\(error.code)"
        } catch {
            return "\(error)"
        }
    }
}
