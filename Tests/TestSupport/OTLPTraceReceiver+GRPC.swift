import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization

extension OTLPTraceReceiver {
    /// An OTLP/gRPC receiver: `opentelemetry.proto.collector.trace.v1.TraceService/Export` on a
    /// loopback HTTP/2 port, its messages read by the same protobuf reader as OTLP/HTTP's bodies.
    public static func startGRPC() async throws -> OTLPTraceReceiver {
        let collector = TraceCollectorService()
        let server = GRPCServer(
            transport: HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext),
            services: [collector]
        )
        let task = Task<Void, Never> {
            try? await server.serve()
        }
        guard let address = try? await server.listeningAddress?.ipv4 else {
            task.cancel()
            throw OTLPReceiverError("the OTLP/gRPC receiver did not start")
        }
        let receiver = OTLPTraceReceiver(port: address.port)
        collector.receiver.withLock { $0 = receiver }
        receiver.server.withLock { $0 = task }
        return receiver
    }
}

/// The collector's trace service, with messages kept as bytes.
private final class TraceCollectorService: RegistrableRPCService {
    let receiver = Mutex<OTLPTraceReceiver?>(nil)

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: MethodDescriptor(fullyQualifiedService: "opentelemetry.proto.collector.trace.v1.TraceService", method: "Export"),
            deserializer: RawMessageCoder(), serializer: RawMessageCoder()
        ) { [self] request, _ in
            var spans: [OTLPTraceReceiver.ReceivedSpan] = []
            for try await message in request.messages {
                guard let decoded = try? OTLPTraceReceiver.decode(message) else {
                    throw RPCError(code: .invalidArgument, message: "not an ExportTraceServiceRequest")
                }
                spans += decoded
            }
            guard let receiver = receiver.withLock({ $0 }) else { throw RPCError(code: .unavailable, message: "starting") }
            receiver.received.withLock { $0.append(contentsOf: spans) }
            // An empty ExportTraceServiceResponse: everything was accepted.
            return StreamingServerResponse(single: ServerResponse(message: []))
        }
    }
}

private struct RawMessageCoder: MessageSerializer, MessageDeserializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes {
        Bytes(message)
    }

    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}
