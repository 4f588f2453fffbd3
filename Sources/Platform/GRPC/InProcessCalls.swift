import GRPCCore
import GRPCInProcessTransport
import Logging
import Synchronization

/// The calls between an in-process client and its in-process server, so that a call its caller
/// left, or whose deadline passed, cancels the server's handler. Between processes an HTTP/2
/// stream reset does this; grpc-swift's in-process transport cancels handlers only when its
/// server shuts down. The client stamps each call's request metadata with an id; the server
/// attaches the handler's cancellation handle to that id when it reads the metadata.
public final class InProcessCalls: Sendable {
    public struct CallID: Sendable, Hashable {
        let value: UInt64
    }

    static let metadataKey = "x-in-process-call"

    private enum Entry {
        case waiting
        case attached(ServerContext.RPCCancellationHandle)
    }

    private struct State {
        var next: UInt64 = 0
        var entries: [UInt64: Entry] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// The number of calls open on the client's side (for tests).
    public var openCount: Int { state.withLock { $0.entries.count } }

    func open() -> CallID {
        state.withLock { state in
            state.next &+= 1
            state.entries[state.next] = .waiting
            return CallID(value: state.next)
        }
    }

    /// The server has the call's metadata. A call that is no longer open (its caller left before
    /// the server got to it) is cancelled at once.
    func attach(_ rawID: String, cancellation: ServerContext.RPCCancellationHandle) {
        guard let value = UInt64(rawID) else { return }
        let stillOpen = state.withLock { state -> Bool in
            guard state.entries[value] != nil else { return false }
            state.entries[value] = .attached(cancellation)
            return true
        }
        if !stillOpen { cancellation.cancel() }
    }

    /// The client is done with the call; unless it got the final status, the server stops.
    func end(_ id: CallID, completed: Bool) {
        let entry = state.withLock { $0.entries.removeValue(forKey: id.value) }
        if !completed, case .attached(let cancellation)? = entry { cancellation.cancel() }
    }
}

/// One service's in-process connection: the server side goes to its `GRPCServer`, the client
/// side to the gateway's client.
public struct InProcessServiceLink: Sendable {
    public let name: String
    public let transport: InProcessTransport
    public let calls = InProcessCalls()

    public init(name: String, maxMessageBytes: Int = 4 << 20) {
        self.name = name
        let limits = MethodConfig(
            names: [MethodConfig.Name(service: "")],
            maxRequestMessageBytes: maxMessageBytes, maxResponseMessageBytes: maxMessageBytes
        )
        self.transport = InProcessTransport(serviceConfig: ServiceConfig(methodConfig: [limits]))
    }

    public var serverTransport: InProcessServerTransport {
        InProcessServerTransport(base: transport.server, calls: calls)
    }
}

/// grpc-swift's in-process server transport, attaching each call to `InProcessCalls`.
public struct InProcessServerTransport: ServerTransport {
    public typealias Bytes = [UInt8]

    let base: InProcessTransport.Server
    let calls: InProcessCalls

    public func listen(
        streamHandler: @escaping @Sendable (_ stream: RPCStream<Inbound, Outbound>, _ context: ServerContext) async -> Void
    ) async throws {
        try await base.listen { stream, context in
            let inbound = AttachingInbound(base: stream.inbound, calls: calls, cancellation: context.cancellation)
            await streamHandler(
                RPCStream(descriptor: stream.descriptor, inbound: RPCAsyncSequence(wrapping: inbound), outbound: stream.outbound),
                context
            )
        }
    }

    public func beginGracefulShutdown() {
        base.beginGracefulShutdown()
    }
}

/// Request parts, attaching the call when its metadata passes.
private struct AttachingInbound: AsyncSequence, Sendable {
    typealias Element = RPCRequestPart<[UInt8]>
    typealias Failure = any Error

    let base: RPCAsyncSequence<RPCRequestPart<[UInt8]>, any Error>
    let calls: InProcessCalls
    let cancellation: ServerContext.RPCCancellationHandle

    func makeAsyncIterator() -> Iterator {
        Iterator(base: base.makeAsyncIterator(), calls: calls, cancellation: cancellation)
    }

    struct Iterator: AsyncIteratorProtocol {
        var base: RPCAsyncSequence<RPCRequestPart<[UInt8]>, any Error>.AsyncIterator
        let calls: InProcessCalls
        let cancellation: ServerContext.RPCCancellationHandle

        mutating func next() async throws -> Element? {
            let part = try await base.next()
            if case .metadata(let metadata)? = part, let id = metadata[stringValues: InProcessCalls.metadataKey].first(where: { _ in true }) {
                calls.attach(id, cancellation: cancellation)
            }
            return part
        }
    }
}

/// Request parts of an in-process call, its id added to the metadata.
struct CallStampingWriter<Bytes: GRPCContiguousBytes & Sendable>: ClosableRPCWriterProtocol {
    typealias Element = RPCRequestPart<Bytes>

    let base: RPCWriter<RPCRequestPart<Bytes>>.Closable
    let call: InProcessCalls.CallID

    func write(_ element: Element) async throws {
        try await base.write(stamped(element))
    }

    func write(contentsOf elements: some Sequence<Element>) async throws {
        try await base.write(contentsOf: elements.map(stamped))
    }

    func finish() async {
        await base.finish()
    }

    func finish(throwing error: any Error) async {
        await base.finish(throwing: error)
    }

    private func stamped(_ element: Element) -> Element {
        guard case .metadata(var metadata) = element else { return element }
        metadata.replaceOrAddString(String(call.value), forKey: InProcessCalls.metadataKey)
        return .metadata(metadata)
    }
}

/// How a client reaches a service: over the network, or in this process.
public enum ServiceConnection: Sendable {
    case network(ServiceEndpoints)
    case inProcess(InProcessServiceLink, health: HealthStatus)

    /// The monitor `/health` reads for this service.
    public func healthMonitor(ejection: OutlierEjection? = nil, logger: Logger) -> InstanceHealthMonitor {
        switch self {
        case .network(let endpoints): InstanceHealthMonitor(endpoints: endpoints, ejection: ejection, logger: logger)
        case .inProcess(let link, let health): InstanceHealthMonitor(inProcess: link.name, health: health, logger: logger)
        }
    }
}
