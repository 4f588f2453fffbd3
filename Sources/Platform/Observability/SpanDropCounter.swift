import CoreMetrics
import Logging

/// The log handler of a tracing pipeline's own diagnostics: passes every line on to the process's
/// log and counts the spans swift-otel reports lost in `aisaas_trace_spans_dropped_total`, by
/// `reason`: `queue_full` (its warning per batch of spans that found the queue full, with
/// `dropped_count`) and `export_failed` (a batch whose export failed or timed out: swift-otel does
/// not retry it; the warning's logger carries `batch_size`). swift-otel has no metric of its own for
/// either; counted, they can be alerted on, as lost spans make traces that look whole but are not.
/// Spans dropped after its last export before a shutdown are never reported by swift-otel.
struct SpanDropCounter: LogHandler {
    var base: any LogHandler
    let queueFull: Counter
    let exportFailed: Counter
    /// The level lines are passed on at; `logLevel` never hides the warnings that count drops.
    private var level: Logger.Level
    /// `batch_size` of the logger's metadata (swift-otel sets it on the logger of each export),
    /// kept here too: the process's handler need not give its metadata back.
    private var batchSize: Int?

    init(base: any LogHandler, metrics: any MetricsFactory) {
        self.base = base
        level = base.logLevel
        queueFull = Counter(label: "aisaas_trace_spans_dropped_total", dimensions: [("reason", "queue_full")], factory: metrics)
        exportFailed = Counter(label: "aisaas_trace_spans_dropped_total", dimensions: [("reason", "export_failed")], factory: metrics)
    }

    var metadata: Logger.Metadata {
        get { base.metadata }
        set {
            batchSize = Self.count(newValue["batch_size"])
            base.metadata = newValue
        }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { base.metadataProvider }
        set { base.metadataProvider = newValue }
    }

    var logLevel: Logger.Level {
        get { min(level, .warning) }
        set { level = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { base[metadataKey: key] }
        set {
            if key == "batch_size" { batchSize = Self.count(newValue) }
            base[metadataKey: key] = newValue
        }
    }

    func log(event: LogEvent) {
        if let count = Self.count(event.metadata?["dropped_count"]), count > 0 {
            queueFull.increment(by: count)
        } else if event.level >= .warning, event.message.description == "Failed to export batch.",
            let count = Self.count(event.metadata?["batch_size"]) ?? batchSize, count > 0
        {
            exportFailed.increment(by: count)
        }
        if event.level >= level { base.log(event: event) }
    }

    private static func count(_ value: Logger.Metadata.Value?) -> Int? {
        switch value {
        case .string(let text)?: Int(text)
        case .stringConvertible(let convertible)?: Int(convertible.description)
        default: nil
        }
    }
}
