import Foundation
import Tracing

/// Samples with the sampler configuration names now (`OTEL_TRACES_SAMPLER`, which may change
/// while the process runs). swift-otel's own sampler is fixed when its pipeline is made, so that
/// one is set to follow the parent, and this decides where a trace starts: a span this process
/// starts without a caller's trace context. A trace it drops still propagates, marked unsampled
/// (W3C `traceparent` flags `00`), so the services it calls drop it too.
///
/// A caller's decision is kept, except that a sampler that ignores parents (`always_off`,
/// `traceidratio`) may still drop what an outside caller sampled; `traceidratio` decides from the
/// trace ID, as OpenTelemetry's SDKs do, so that every process that sees the trace agrees. A
/// call from another component of the platform (gRPC between them, `trustCallerSampling`) keeps
/// the decision its caller made.
struct LiveSamplingTracer<Base: Tracer>: Tracer {
    typealias Span = Base.Span

    let base: Base
    let sampler: LiveSetting<TracingSettings.Sampler>

    func startSpan<Instant: TracerInstant>(
        _ operationName: String, context: @autoclosure () -> InstrumentationContext, ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant, function: String, file fileID: String, line: UInt
    ) -> Base.Span {
        var context = context()
        switch context[SamplingDecision.self] {
        case .decided?:
            break
        case .fromCaller(let caller)?:
            context[SamplingDecision.self] = .decided
            let current = sampler.current
            if !current.followsParent, !current.samplesTrace(caller.traceIDLow) { markUnsampled(&context, continuing: caller) }
        case nil:
            context[SamplingDecision.self] = .decided
            if !sampler.current.samplesTrace(nil) { markUnsampled(&context, continuing: nil) }
        }
        return base.startSpan(operationName, context: context, ofKind: kind, at: instant(), function: function, file: fileID, line: line)
    }

    /// Gives the trace a parent that was not sampled, so the parent-based pipeline drops it: the
    /// caller's, flagged unsampled, when there is one (the trace keeps its id downstream).
    private func markUnsampled(_ context: inout InstrumentationContext, continuing caller: CallerTrace?) {
        let ids = caller?.ids
        let parent = "00-" + (ids?.traceID ?? Self.randomHex(bytes: 16)) + "-" + (ids?.parentID ?? Self.randomHex(bytes: 8)) + "-00"
        base.extract(["traceparent": parent], into: &context, using: DictionaryExtractor())
    }

    private static func randomHex(bytes: Int) -> String {
        var text = ""
        text.reserveCapacity(bytes * 2)
        for _ in 0..<bytes {
            let byte = UInt8.random(in: 1...255)
            text += byte < 16 ? "0" + String(byte, radix: 16) : String(byte, radix: 16)
        }
        return text
    }

    func extract<Carrier, Extract: Extractor>(_ carrier: Carrier, into context: inout InstrumentationContext, using extractor: Extract)
    where Extract.Carrier == Carrier {
        base.extract(carrier, into: &context, using: extractor)
        if let header = extractor.extract(key: "traceparent", from: carrier) { context[SamplingDecision.self] = .fromCaller(CallerTrace(header)) }
    }

    func inject<Carrier, Inject: Injector>(_ context: InstrumentationContext, into carrier: inout Carrier, using injector: Inject)
    where Inject.Carrier == Carrier {
        base.inject(context, into: &carrier, using: injector)
    }

    func activeSpan(identifiedBy context: InstrumentationContext) -> Base.Span? {
        base.activeSpan(identifiedBy: context)
    }

    @available(*, deprecated)
    func forceFlush() {
        base.forceFlush()
    }
}

private struct DictionaryExtractor: Extractor {
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
}

/// Whether the sampling of the trace a context belongs to is settled in this process.
enum SamplingDecision: ServiceContextKey {
    typealias Value = Origin
    enum Origin: Sendable {
        case decided
        case fromCaller(CallerTrace)
    }
}

/// The trace a caller's `traceparent` names (`00-<trace id>-<parent id>-<flags>`), read only when
/// a sampler needs it; nil ids when the header is not one.
struct CallerTrace: Sendable {
    let header: String

    init(_ header: String) {
        self.header = header
    }

    var ids: (traceID: String, parentID: String)? {
        let fields = header.split(separator: "-", omittingEmptySubsequences: false)
        let isHex = { (field: Substring, count: Int) in field.utf8.count == count && field.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) } }
        guard fields.count >= 4, isHex(fields[1], 32), isHex(fields[2], 16) else { return nil }
        return (String(fields[1]), String(fields[2]))
    }

    /// The trace ID's last 8 bytes, big-endian: what `traceidratio` decides from.
    var traceIDLow: UInt64? { ids.flatMap { UInt64($0.traceID.suffix(16), radix: 16) } }
}

extension InstrumentationContext {
    /// Keeps the sampling decision of the trace this context continues, when it came from a
    /// caller: for calls between the platform's components (gRPC), whose first process decided
    /// it. A sampler that ignores parents would otherwise decide again at every hop.
    public mutating func trustCallerSampling() {
        if case .fromCaller? = self[SamplingDecision.self] { self[SamplingDecision.self] = .decided }
    }
}

extension TracingSettings.Sampler {
    /// Whether a caller's decision stands (the `parentbased_*` samplers).
    var followsParent: Bool {
        switch self {
        case .parentBasedAlwaysOn, .parentBasedAlwaysOff, .parentBasedRatio: return true
        case .alwaysOn, .alwaysOff, .ratio: return false
        }
    }

    /// The decision for a trace that starts here (`traceIDLow` nil: its ID is not made yet, and
    /// a ratio draws at random) or that a caller's trace ID names.
    func samplesTrace(_ traceIDLow: UInt64?) -> Bool {
        switch self {
        case .alwaysOn, .parentBasedAlwaysOn: return true
        case .alwaysOff, .parentBasedAlwaysOff: return false
        case .ratio(let ratio), .parentBasedRatio(let ratio):
            if ratio >= 1 { return true }
            if ratio <= 0 { return false }
            guard let traceIDLow else { return Double.random(in: 0..<1) < ratio }
            // As OpenTelemetry's Go and Java SDKs decide it: the last 8 bytes without their lowest
            // bit, under ratio × 2^63.
            return traceIDLow >> 1 < UInt64(ratio * 0x1p63)
        }
    }
}
