import GRPCNIOTransportHTTP2

extension HTTP2ServerTransport.Posix.Config {
    /// The server half of the platform's keepalive. Its clients ping a connection every second
    /// or two, also while a call waits for its answer (`InstanceHealthMonitor`,
    /// `ServiceClientFactory`). grpc-swift's default server takes a ping more often than every
    /// five minutes as a strike, even during a call, and closes the connection at the third: a
    /// call quiet for a few seconds would fail UNAVAILABLE.
    public static func platform(maxRequestBytes: Int = 4 << 20) -> Self {
        .defaults {
            $0.rpc.maxRequestPayloadSize = maxRequestBytes
            $0.connection.keepalive.clientBehavior = .init(minPingIntervalWithoutCalls: .milliseconds(500), allowWithoutCalls: true)
        }
    }
}
