import CoreMetrics
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import Platform
import Synchronization
import Tracing

extension HTTPField.Name {
    static let traceparent = HTTPField.Name("traceparent")!
}

/// Outermost gateway middleware: each request as metrics (duration, count, sizes, in flight,
/// by method, route template and status), as the trace's server span (a child of the client's
/// `traceparent` when it sent one, whose own `traceparent` goes back in the response), and as
/// one access-log line. A request ends when its response body has been written, so a stream
/// counts for as long as it runs.
struct HTTPTelemetryMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext
    let telemetry: Telemetry
    let logger: Logger
    private let routes: MetricHandles<RouteLabels, RouteHandles>
    private let inFlight: MetricHandles<String, Meter>

    init(telemetry: Telemetry, logger: Logger) {
        self.telemetry = telemetry
        self.logger = logger
        let factory = telemetry.metrics
        routes = MetricHandles { RouteHandles(labels: $0, factory: factory) }
        inFlight = MetricHandles { Meter(label: "http_server_active_requests", dimensions: [("method", $0)], factory: factory) }
    }

    func handle(_ request: Request, context: Context, next: @concurrent (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        let method = Self.methodLabel(request.method)
        let active = inFlight[method]
        active.increment()
        var context = context
        let clientTraceparent = request.headers[.traceparent]
        context.clientTraceparent = clientTraceparent

        guard telemetry.isTracing else {
            var response = try await served(request, context: context, next: next, method: method, started: started, active: active, span: nil)
            // Without tracing of our own, the client's trace still names the request in answers.
            if let clientTraceparent { response.headers[.traceparent] = clientTraceparent }
            return response
        }
        let parent = telemetry.tracer.extracting(from: request.headers, using: HTTPFieldsExtractor())
        let span = telemetry.tracer.startSpan(method, context: parent, ofKind: .server)
        let (path, peer, agent) = (request.uri.path, context.peerAddress, request.headers[.userAgent])
        // One read and one write of the span's attributes: each is a copy of them under a lock.
        span.updateAttributes { attributes in
            attributes["http.request.method"] = method
            attributes["url.path"] = path
            attributes["url.scheme"] = "http"
            if let peer { attributes["client.address"] = peer }
            if let agent { attributes["user_agent.original"] = String(agent.prefix(256)) }
        }
        var response = try await InstrumentationContext.$current.withValue(span.context) {
            try await served(request, context: context, next: next, method: method, started: started, active: active, span: span)
        }
        telemetry.tracer.inject(span.context, into: &response.headers, using: HTTPFieldsInjector())
        return response
    }

    private func served(
        _ request: Request, context: Context, next: @concurrent (Request, Context) async throws -> Response,
        method: String, started: ContinuousClock.Instant, active: Meter, span: (any Span)?
    ) async throws -> Response {
        let requestBytes = request.headers[.contentLength].flatMap { Int($0) }
        // Nothing of the access line is made unless it is written (the level may leave it out).
        let writesAccessLine = telemetry.accessLog && logger.logLevel <= .info
        // The access line is written once the body is, outside the span's task: it names the trace itself.
        let traceId = writesAccessLine ? span.map { traceID(of: $0) } ?? context.clientTraceId : nil
        let finish: @Sendable (_ route: String, _ status: Int, _ requestId: String, _ bytes: Int, _ failure: String?) -> Void = { route, status, requestId, bytes, failure in
            active.decrement()
            let handles = routes[RouteLabels(method: method, route: route, status: status)]
            handles.duration.recordSince(started)
            handles.requests.increment()
            if let requestBytes { handles.requestSize.record(requestBytes) }
            handles.responseSize.record(bytes)
            if let span {
                span.operationName = "\(method) \(route)"
                span.updateAttributes { attributes in
                    attributes["http.route"] = route
                    attributes["http.response.status_code"] = status
                    if let failure { attributes["error.type"] = failure }
                }
                if status >= 500 { span.setStatus(SpanStatus(code: .error)) }
                span.end()
            }
            if writesAccessLine {
                var metadata: Logger.Metadata = [
                    "method": .string(method), "route": .string(route), "status": .stringConvertible(status),
                    "duration_ms": .string((ContinuousClock.now - started).millisecondsText), "bytes": .stringConvertible(bytes),
                    "request-id": .string(requestId),
                ]
                if let requestBytes { metadata["request_bytes"] = .stringConvertible(requestBytes) }
                if let traceId { metadata["trace-id"] = .string(traceId) }
                if let failure { metadata["error"] = .string(failure) }
                logger.info("access", metadata: metadata)
            }
        }
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            // The envelope turns errors into answers; this is a failure below it.
            finish(Self.route(context), 500, context.requestId, 0, "\(type(of: error))")
            throw error
        }
        let route = Self.route(context)
        let status = response.status.code
        let requestId = response.headers[.requestId] ?? ""
        // HEAD answers are never written.
        guard request.method != .head else {
            finish(route, status, requestId, 0, nil)
            return response
        }
        // A body of known length is one buffer written right after this returns: counted as
        // it is. A stream is followed to its end.
        if let length = response.body.contentLength {
            finish(route, status, requestId, length, nil)
            return response
        }
        response.body = response.body.counted { bytes, failed in
            finish(route, status, requestId, bytes, failed ? "response write failed" : nil)
        }
        return response
    }

    private func traceID(of span: any Span) -> String? {
        var fields = HTTPFields()
        telemetry.tracer.inject(span.context, into: &fields, using: HTTPFieldsInjector())
        return fields[.traceparent].flatMap(Context.traceID(inTraceparent:))
    }

    /// The route template the router matched, never the raw path (its ids are unbounded).
    static func route(_ context: Context) -> String {
        guard let path = context.endpointPath, path != "NotFound" else { return "unmatched" }
        return path
    }

    /// Standard methods by name; anything else as `_OTHER`, as OpenTelemetry's HTTP conventions say.
    static func methodLabel(_ method: HTTPRequest.Method) -> String {
        switch method {
        case .get, .head, .post, .put, .delete, .options, .patch, .connect, .trace: method.rawValue
        default: "_OTHER"
        }
    }
}

struct RouteLabels: Hashable, Sendable {
    var method: String
    var route: String
    var status: Int
}

struct RouteHandles: Sendable {
    let duration: CoreMetrics.Timer
    let requests: Counter
    let requestSize: Recorder
    let responseSize: Recorder

    init(labels: RouteLabels, factory: any MetricsFactory) {
        let statusClass = "\(labels.status / 100)xx"
        duration = CoreMetrics.Timer(
            label: "http_server_request_duration_seconds",
            dimensions: [("method", labels.method), ("route", labels.route), ("status_class", statusClass)], factory: factory
        )
        requests = Counter(
            label: "http_server_requests_total",
            dimensions: [("method", labels.method), ("route", labels.route), ("status", "\(labels.status)")], factory: factory
        )
        let sizes = [("method", labels.method), ("route", labels.route)]
        requestSize = Recorder(label: "http_server_request_body_size_bytes", dimensions: sizes, aggregate: true, factory: factory)
        responseSize = Recorder(label: "http_server_response_body_size_bytes", dimensions: sizes, aggregate: true, factory: factory)
    }
}

extension HummingbirdCore.ResponseBody {
    /// This body, reporting how many bytes it wrote once it is done (or failed).
    func counted(_ done: @escaping @Sendable (_ bytes: Int, _ failed: Bool) -> Void) -> HummingbirdCore.ResponseBody {
        let body = self
        return HummingbirdCore.ResponseBody(contentLength: contentLength) { writer in
            let count = ByteCount()
            do {
                try await body.write(CountingBodyWriter(base: writer, count: count))
            } catch {
                done(count.value, true)
                throw error
            }
            done(count.value, false)
        }
    }
}

private final class ByteCount: Sendable {
    private let bytes = Atomic<Int>(0)
    var value: Int { bytes.load(ordering: .relaxed) }
    func add(_ count: Int) { bytes.add(count, ordering: .relaxed) }
}

private struct CountingBodyWriter: ResponseBodyWriter {
    var base: any ResponseBodyWriter
    let count: ByteCount

    @concurrent mutating func write(_ buffer: ByteBuffer) async throws {
        count.add(buffer.readableBytes)
        try await base.write(buffer)
    }

    @concurrent mutating func write(contentsOf buffers: some Sequence<ByteBuffer>) async throws {
        for buffer in buffers { count.add(buffer.readableBytes) }
        try await base.write(contentsOf: buffers)
    }

    @concurrent consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
        try await base.finish(trailingHeaders)
    }
}
