import Foundation
import Tracing

/// Samples with the sampler configuration names now (`OTEL_TRACES_SAMPLER`, which may change
/// while the process runs). swift-otel's own sampler is fixed when its pipeline is made, so that
/// one is set to follow the parent, and this decides where a trace starts: a span this process
/// starts without a caller's trace context. A trace it drops still propagates, marked unsampled
/// (W3C `traceparent` flags `00`), so the services it calls drop it too.
///
/// A caller's decision is kept, except that a sampler that ignores parents (`always_off`,
/// `traceidratio`) may still drop what the caller sampled.
struct LiveSamplingTracer<Base: Tracer>: Tracer {
    typealias Span = Base.Span

    let base: Base
    let sampler: LiveSetting<TracingSettings.Sampler>

    /// Whether the sampling of the trace a context belongs to is settled in this process.
    private enum Decision: ServiceContextKey {
        typealias Value = Origin
        enum Origin { case decided, fromCaller }
    }

    func startSpan<Instant: TracerInstant>(
        _ operationName: String, context: @autoclosure () -> InstrumentationContext, ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant, function: String, file fileID: String, line: UInt
    ) -> Base.Span {
        var context = context()
        switch context[Decision.self] {
        case .decided?:
            break
        case .fromCaller?:
            context[Decision.self] = .decided
            let current = sampler.current
            if !current.followsParent, !current.samplesTrace() { markUnsampled(&context) }
        case nil:
            context[Decision.self] = .decided
            if !sampler.current.samplesTrace() { markUnsampled(&context) }
        }
        return base.startSpan(operationName, context: context, ofKind: kind, at: instant(), function: function, file: fileID, line: line)
    }

    /// Gives the trace a parent that was not sampled, so the parent-based pipeline drops it.
    private func markUnsampled(_ context: inout InstrumentationContext) {
        let parent = "00-" + Self.randomHex(bytes: 16) + "-" + Self.randomHex(bytes: 8) + "-00"
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
        if extractor.extract(key: "traceparent", from: carrier) != nil { context[Decision.self] = .fromCaller }
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

extension TracingSettings.Sampler {
    /// Whether a caller's decision stands (the `parentbased_*` samplers).
    var followsParent: Bool {
        switch self {
        case .parentBasedAlwaysOn, .parentBasedAlwaysOff, .parentBasedRatio: return true
        case .alwaysOn, .alwaysOff, .ratio: return false
        }
    }

    /// The decision for a trace that starts here.
    func samplesTrace() -> Bool {
        switch self {
        case .alwaysOn, .parentBasedAlwaysOn: return true
        case .alwaysOff, .parentBasedAlwaysOff: return false
        case .ratio(let ratio), .parentBasedRatio(let ratio): return ratio >= 1 || Double.random(in: 0..<1) < ratio
        }
    }
}
