import ServiceLifecycle
import Synchronization
import Tracing

/// Hands ended spans to the tracing pipeline in bursts, every `interval`, instead of one at a time.
///
/// swift-otel passes each ended span through two async streams and an actor to its batch
/// processor: handed one at a time from the request's thread, every span woke a thread of Swift's
/// pool, and tracing at full sampling cost about 0.27 ms of CPU per `GET /user/current` (four
/// spans) on the benchmark machine. A span's end time is taken when it ends, so handing it over
/// later changes nothing in what is exported.
struct BurstEndingTracer<Base: Tracer>: Tracer {
    let base: Base
    let ended: EndedSpans<Base.Span>

    func startSpan<Instant: TracerInstant>(
        _ operationName: String, context: @autoclosure () -> InstrumentationContext, ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant, function: String, file fileID: String, line: UInt
    ) -> BurstEndingSpan<Base.Span> {
        BurstEndingSpan(base: base.startSpan(operationName, context: context(), ofKind: kind, at: instant(), function: function, file: fileID, line: line), ended: ended)
    }

    func extract<Carrier, Extract: Extractor>(_ carrier: Carrier, into context: inout InstrumentationContext, using extractor: Extract)
    where Extract.Carrier == Carrier {
        base.extract(carrier, into: &context, using: extractor)
    }

    func inject<Carrier, Inject: Injector>(_ context: InstrumentationContext, into carrier: inout Carrier, using injector: Inject)
    where Inject.Carrier == Carrier {
        base.inject(context, into: &carrier, using: injector)
    }

    func activeSpan(identifiedBy context: InstrumentationContext) -> BurstEndingSpan<Base.Span>? {
        base.activeSpan(identifiedBy: context).map { BurstEndingSpan(base: $0, ended: ended) }
    }

    @available(*, deprecated)
    func forceFlush() {
        ended.handOver()
        base.forceFlush()
    }
}

/// A span whose end waits in `EndedSpans` for the next burst.
struct BurstEndingSpan<Base: Span>: Span {
    let base: Base
    let ended: EndedSpans<Base>

    var context: InstrumentationContext { base.context }

    var operationName: String {
        get { base.operationName }
        nonmutating set { base.operationName = newValue }
    }

    var attributes: SpanAttributes {
        get { base.attributes }
        nonmutating set { base.attributes = newValue }
    }

    var isRecording: Bool { base.isRecording }

    func setStatus(_ status: SpanStatus) { base.setStatus(status) }
    func addEvent(_ event: SpanEvent) { base.addEvent(event) }
    func addLink(_ link: SpanLink) { base.addLink(link) }

    func recordError<Instant: TracerInstant>(_ error: any Error, attributes: SpanAttributes, at instant: @autoclosure () -> Instant) {
        base.recordError(error, attributes: attributes, at: instant())
    }

    func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) {
        ended.append(base, at: instant().nanosecondsSinceEpoch)
    }
}

/// Spans ended since the last burst, with their end times; a service hands them over every
/// `interval` and once more when it stops.
final class EndedSpans<S: Span>: Service, Sendable {
    private struct EndTime: TracerInstant {
        let nanosecondsSinceEpoch: UInt64
        static func < (lhs: EndTime, rhs: EndTime) -> Bool { lhs.nanosecondsSinceEpoch < rhs.nanosecondsSinceEpoch }
    }

    let interval: Duration
    private let pending = Mutex<[(span: S, end: UInt64)]>([])

    init(interval: Duration = .milliseconds(20)) {
        self.interval = interval
    }

    func append(_ span: S, at end: UInt64) {
        pending.withLock { $0.append((span, end)) }
    }

    /// Ends, on the base pipeline, every span waiting.
    func handOver() {
        let spans = pending.withLock { pending -> [(span: S, end: UInt64)] in
            defer { pending.removeAll(keepingCapacity: true) }
            return pending
        }
        for (span, end) in spans { span.end(at: EndTime(nanosecondsSinceEpoch: end)) }
    }

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await cancelWhenGracefulShutdown { [interval] in try await Task.sleep(for: interval) }
            } catch {
                break
            }
            handOver()
        }
        handOver()
    }
}
