import CoreMetrics
import Logging

/// The log handler of a tracing pipeline's own diagnostics: passes every line on to the process's
/// log and counts the spans swift-otel reports dropped (its queue full) in
/// `aisaas_trace_spans_dropped_total{component}`. swift-otel has no metric of its own for them,
/// only a warning per batch with `dropped_count`; counted, they can be alerted on, as lost spans
/// make traces that look whole but are not.
struct SpanDropCounter: LogHandler {
    var base: any LogHandler
    let dropped: Counter
    /// The level lines are passed on at; `logLevel` never hides the warnings that count drops.
    private var level: Logger.Level

    init(base: any LogHandler, metrics: any MetricsFactory) {
        self.base = base
        level = base.logLevel
        dropped = Counter(label: "aisaas_trace_spans_dropped_total", factory: metrics)
    }

    var metadata: Logger.Metadata {
        get { base.metadata }
        set { base.metadata = newValue }
    }

    var logLevel: Logger.Level {
        get { min(level, .warning) }
        set { level = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { base[metadataKey: key] }
        set { base[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        if let count = Self.droppedCount(event.metadata?["dropped_count"]), count > 0 {
            dropped.increment(by: count)
        }
        if event.level >= level { base.log(event: event) }
    }

    private static func droppedCount(_ value: Logger.Metadata.Value?) -> Int? {
        switch value {
        case .string(let text)?: Int(text)
        case .stringConvertible(let convertible)?: Int(convertible.description)
        default: nil
        }
    }
}
