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
