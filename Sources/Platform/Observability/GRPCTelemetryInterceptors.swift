import CoreMetrics
import GRPCCore
import Synchronization
import Tracing

/// A client's calls as client spans whose context travels to the server in the call's metadata
/// (`traceparent`). The calls' metrics are kept by the transport (`ClientCallMetrics`), which
/// sees each call's status without wrapping its response; with tracing off this does nothing.
public struct TelemetryClientInterceptor: ClientInterceptor {
    private let telemetry: Telemetry

    public init(telemetry: Telemetry) {
        self.telemetry = telemetry
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingClientRequest<Input>,
        context: ClientContext,
        next: @concurrent (StreamingClientRequest<Input>, ClientContext) async throws -> StreamingClientResponse<Output>
    ) async throws -> StreamingClientResponse<Output> {
        guard telemetry.isTracing else { return try await next(request, context) }
        let descriptor = context.descriptor
        let span = telemetry.tracer.startSpan(descriptor.fullyQualifiedMethod, ofKind: .client)
        let server = Self.instance(context.remotePeer)
        // One read and one write of the span's attributes: each is a copy of them under a lock.
        span.updateAttributes { attributes in
            attributes["rpc.system"] = "grpc"
            attributes["rpc.service"] = descriptor.service.fullyQualifiedService
            attributes["rpc.method"] = descriptor.method
            attributes["server.address"] = server
        }
        var request = request
        telemetry.tracer.inject(span.context, into: &request.metadata, using: MetadataInjector())
        let traced = request
        return try await Self.measured(request: traced, context: context, next: next) { code in endRPCSpan(span, code) }
    }

    /// Runs the call and reports its final status once: at once for a failed call, when the last
    /// response part has been read for a streaming one.
    static func measured<Input: Sendable, Output: Sendable>(
        request: StreamingClientRequest<Input>,
        context: ClientContext,
        next: @concurrent (StreamingClientRequest<Input>, ClientContext) async throws -> StreamingClientResponse<Output>,
        record: @escaping @Sendable (RPCError.Code?) -> Void
    ) async throws -> StreamingClientResponse<Output> {
        let response: StreamingClientResponse<Output>
        do {
            response = try await next(request, context)
        } catch {
            record((error as? RPCError)?.code ?? .unknown)
            throw error
        }
        switch response.accepted {
        case .failure(let error):
            record(error.code)
            return response
        case .success(let contents):
            let once = ReportOnce(record)
            let body = RPCAsyncSequence<StreamingClientResponse<Output>.Contents.BodyPart, any Error>(
                wrapping: ReportingSequence(base: contents.bodyParts, report: once)
            )
            return StreamingClientResponse(accepted: .success(.init(metadata: contents.metadata, bodyParts: body)))
        }
    }

    /// `ipv4:127.0.0.1:9101` as `127.0.0.1:9101`; calls in this process as `in-process`.
    static func instance(_ peer: String) -> String {
        if peer.hasPrefix("in-process") { return "in-process" }
        for prefix in ["ipv4:", "ipv6:", "unix:"] where peer.hasPrefix(prefix) { return String(peer.dropFirst(prefix.count)) }
        return peer.isEmpty ? "unknown" : peer
    }
}

/// A service's calls as metrics (`rpc_server_duration_seconds`, `rpc_server_calls_total`) and as
/// server spans, children of the caller's span when its metadata carries a `traceparent`.
public struct TelemetryServerInterceptor: ServerInterceptor {
    private let telemetry: Telemetry
    private let handles: MetricHandles<CallLabels, CallHandles>

    public init(telemetry: Telemetry) {
        self.telemetry = telemetry
        let factory = telemetry.metrics
        handles = MetricHandles { labels in CallHandles(side: "server", labels: labels, factory: factory) }
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @concurrent @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let started = ContinuousClock.now
        let descriptor = context.descriptor
        let handles = self.handles
        let record: @Sendable (RPCError.Code?) -> Void = { code in
            let handle = handles[CallLabels(method: descriptor, code: code, peer: nil)]
            handle.calls.increment()
            handle.duration.recordSince(started)
        }
        guard telemetry.isTracing else {
            return try await Self.measured(request: request, context: context, next: next, spanContext: nil, record: record)
        }
        var parent = telemetry.tracer.extracting(from: request.metadata, using: MetadataExtractor())
        // Callers of the services are the platform's own components: their decision stands.
        parent.trustCallerSampling()
        let span = telemetry.tracer.startSpan(descriptor.fullyQualifiedMethod, context: parent, ofKind: .server)
        span.updateAttributes { attributes in
            attributes["rpc.system"] = "grpc"
            attributes["rpc.service"] = descriptor.service.fullyQualifiedService
            attributes["rpc.method"] = descriptor.method
        }
        let ended: @Sendable (RPCError.Code?) -> Void = { code in
            record(code)
            endRPCSpan(span, code)
        }
        return try await InstrumentationContext.$current.withValue(span.context) {
            try await Self.measured(request: request, context: context, next: next, spanContext: span.context, record: ended)
        }
    }

    static func measured<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @concurrent @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>,
        spanContext: InstrumentationContext?,
        record: @escaping @Sendable (RPCError.Code?) -> Void
    ) async throws -> StreamingServerResponse<Output> {
        let response: StreamingServerResponse<Output>
        do {
            response = try await next(request, context)
        } catch {
            record((error as? RPCError)?.code ?? .unknown)
            throw error
        }
        switch response.accepted {
        case .failure(let error):
            record(error.code)
            return response
        case .success(let contents):
            // The handler's work for a unary call is done; a streaming one writes its messages
            // in `producer`, and its end is the call's end.
            let producer = contents.producer
            let wrapped = StreamingServerResponse<Output>.Contents(metadata: contents.metadata) { writer in
                do {
                    let trailers: Metadata
                    if let spanContext {
                        trailers = try await InstrumentationContext.$current.withValue(spanContext) { try await producer(writer) }
                    } else {
                        trailers = try await producer(writer)
                    }
                    record(nil)
                    return trailers
                } catch {
                    record((error as? RPCError)?.code ?? .unknown)
                    throw error
                }
            }
            return StreamingServerResponse(accepted: .success(wrapped))
        }
    }
}

/// Ends a client or server span with the call's status (nil: OK).
func endRPCSpan(_ span: any Span, _ code: RPCError.Code?) {
    span.attributes["rpc.grpc.status_code"] = Int(code.map { Int($0.rawValue) } ?? 0)
    if let code { span.setStatus(SpanStatus(code: .error, message: "\(code)")) }
    span.end()
}

/// Told how each call of a client ended, by `ServiceClientTransport`, which watches every call's
/// status for its deadline anyway: metrics and outlier ejection need no interceptor of their own.
public protocol ClientCallObserver: Sendable {
    /// `peer` is the call's `remotePeer`; `code` nil for OK; `answered` when the status came from
    /// the peer (not from this side: a deadline here, a broken connection, a caller gone).
    func callEnded(method: MethodDescriptor, peer: String, code: RPCError.Code?, answered: Bool, started: ContinuousClock.Instant)
}

/// `rpc_client_duration_seconds` and `rpc_client_calls_total` by service, method, status code and
/// instance.
public final class ClientCallMetrics: ClientCallObserver {
    private let handles: MetricHandles<CallLabels, CallHandles>

    public init(telemetry: Telemetry) {
        let factory = telemetry.metrics
        handles = MetricHandles { labels in CallHandles(side: "client", labels: labels, factory: factory) }
    }

    public func callEnded(method: MethodDescriptor, peer: String, code: RPCError.Code?, answered: Bool, started: ContinuousClock.Instant) {
        let call = handles[CallLabels(method: method, code: code, peer: peer)]
        call.calls.increment()
        call.duration.recordSince(started)
    }
}

/// A call's series, keyed by what the call has at hand (no strings made per call): the label
/// values are spelled out once, when the series' handles are made.
struct CallLabels: Hashable, Sendable {
    var method: MethodDescriptor
    var code: RPCError.Code?
    /// The client's `remotePeer`; nil on the server side.
    var peer: String?
}

struct CallHandles: Sendable {
    let calls: Counter
    let duration: CoreMetrics.Timer

    init(side: String, labels: CallLabels, factory: any MetricsFactory) {
        var dimensions = [
            ("rpc_service", labels.method.service.fullyQualifiedService), ("rpc_method", labels.method.method),
            ("rpc_grpc_status_code", labels.code.map { "\($0)" } ?? "ok"),
        ]
        if let peer = labels.peer { dimensions.append(("instance_address", TelemetryClientInterceptor.instance(peer))) }
        calls = Counter(label: "rpc_\(side)_calls_total", dimensions: dimensions, factory: factory)
        duration = CoreMetrics.Timer(label: "rpc_\(side)_duration_seconds", dimensions: dimensions, factory: factory)
    }
}

/// Calls `report` once, with the first outcome it is given.
final class ReportOnce: Sendable {
    private let reported = Atomic<Bool>(false)
    private let report: @Sendable (RPCError.Code?) -> Void

    init(_ report: @escaping @Sendable (RPCError.Code?) -> Void) {
        self.report = report
    }

    func callAsFunction(_ code: RPCError.Code?) {
        guard !reported.exchange(true, ordering: .acquiringAndReleasing) else { return }
        report(code)
    }
}

/// A response's parts, reporting the call's status when the trailers arrive or the stream fails.
private struct ReportingSequence<Output: Sendable>: AsyncSequence, Sendable {
    typealias Element = StreamingClientResponse<Output>.Contents.BodyPart
    let base: RPCAsyncSequence<Element, any Error>
    let report: ReportOnce

    func makeAsyncIterator() -> Iterator {
        Iterator(base: base.makeAsyncIterator(), report: report)
    }

    struct Iterator: AsyncIteratorProtocol {
        var base: RPCAsyncSequence<Element, any Error>.AsyncIterator
        let report: ReportOnce

        mutating func next() async throws -> Element? {
            do {
                let part = try await base.next(isolation: #isolation)
                switch part {
                case .trailingMetadata?, nil: report(nil)
                case .message?: break
                }
                return part
            } catch {
                report((error as? RPCError)?.code ?? .unknown)
                throw error
            }
        }
    }
}
