import Foundation
import Logging

/// How a process reports itself: Prometheus metrics on a listener of their own, the access log,
/// and OpenTelemetry traces, configured by OpenTelemetry's standard variables.
public struct ObservabilitySettings: Sendable {
    /// The part that applies without a restart: `ACCESS_LOG` and `OTEL_TRACES_SAMPLER(_ARG)`.
    public struct Dynamic: Sendable, Equatable {
        public var accessLog: Bool
        public var sampler: TracingSettings.Sampler

        public static func read(_ settings: SettingsReader) -> Dynamic {
            Dynamic(accessLog: settings.bool("access.log", default: true), sampler: TracingSettings.readSampler(settings))
        }
    }

    /// `METRICS_HOST:METRICS_PORT` (default `127.0.0.1:9464`); nil when `METRICS_PORT=0`.
    public var metricsListen: HostPort?
    /// `ACCESS_LOG` (default true): one line per HTTP request.
    public var accessLog: Bool = true
    public var tracing: TracingSettings?
    /// `BUILD_COMMIT`: the commit `aisaas_build_info` names.
    public var buildCommit: String?

    public init(metricsListen: HostPort? = nil, accessLog: Bool = true, tracing: TracingSettings? = nil, buildCommit: String? = nil) {
        self.metricsListen = metricsListen
        self.accessLog = accessLog
        self.tracing = tracing
        self.buildCommit = buildCommit
    }

    public static func read(_ settings: SettingsReader) -> ObservabilitySettings {
        var result = ObservabilitySettings()
        let port = settings.int("metrics.port", default: 9464, range: 0...65535)
        if port != 0 { result.metricsListen = HostPort(host: settings.string("metrics.host", default: "127.0.0.1"), port: port) }
        result.accessLog = settings.bool("access.log", default: true)
        result.buildCommit = settings.string("build.commit")
        result.tracing = TracingSettings.read(settings)
        return result
    }
}

/// The OpenTelemetry settings of traces. Tracing is on only when `OTEL_TRACES_EXPORTER=otlp` and
/// `OTEL_SDK_DISABLED` is not true.
public struct TracingSettings: Sendable {
    public enum Exporter: String, Sendable { case otlp }
    public enum OTLPProtocol: String, Sendable, CaseIterable {
        case grpc
        case httpProtobuf = "http/protobuf"
        case httpJSON = "http/json"
    }
    public enum Sampler: Sendable, Equatable {
        case alwaysOn, alwaysOff, ratio(Double), parentBasedAlwaysOn, parentBasedAlwaysOff, parentBasedRatio(Double)
    }

    public var exporter: Exporter
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (a full URL) or `OTEL_EXPORTER_OTLP_ENDPOINT` (a base).
    public var endpoint: String?
    public var endpointIsSignalSpecific = false
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` (default `http/protobuf`, as the specification says).
    public var otlpProtocol: OTLPProtocol = .httpProtobuf
    /// `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` (default `parentbased_always_on`).
    public var sampler: Sampler = .parentBasedAlwaysOn
    /// `OTEL_SERVICE_NAME`: replaces the component's name in a process of one component; in
    /// `aisaas all` each component keeps its name and this becomes `service.namespace`.
    public var serviceName: String?
    /// `OTEL_RESOURCE_ATTRIBUTES`: `key=value,…`.
    public var resourceAttributes: [String: String] = [:]
    /// `OTEL_GENAI_CAPTURE_CONTENT`: prompts and completions in provider spans (default false).
    public var capturesGenAIContent = false
    /// The batch span processor's settings. swift-otel exports one batch (`maxExportBatchSize`)
    /// each `scheduleDelay`, and another early only when its queue is full, dropping the spans
    /// that arrive while it is: unlike the specification's processor, it does not export as soon
    /// as a batch is ready. With the specification's defaults (5 s, 512 of 2,048) a loaded
    /// component ran with its queue full, one batch of 512 out per export, and dropped about half
    /// of its spans. The platform's defaults export `maxExportBatchSize / scheduleDelay` spans a
    /// second on the timer alone (about 40,000 for each component, while an export of 4,096 takes
    /// under 100 ms) and queue as many as arrive in 0.4 s at that rate (some 16 MB at most).
    ///
    /// `OTEL_BSP_SCHEDULE_DELAY` in milliseconds (default 100): the longest a span waits for export.
    public var scheduleDelay: Duration = .milliseconds(100)
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` (default 4096, or the queue's size if that is smaller): spans in one export.
    public var maxExportBatchSize = 4096
    /// `OTEL_BSP_MAX_QUEUE_SIZE` (default 16384): spans waiting for export, beyond which they are dropped.
    public var maxQueueSize = 16384
    /// `OTEL_BSP_EXPORT_TIMEOUT` in milliseconds (default 30000).
    public var exportTimeout: Duration = .seconds(30)

    public init(exporter: Exporter, endpoint: String? = nil, otlpProtocol: OTLPProtocol = .httpProtobuf) {
        self.exporter = exporter
        self.endpoint = endpoint
        self.otlpProtocol = otlpProtocol
    }

    static func read(_ settings: SettingsReader) -> TracingSettings? {
        let capture = settings.bool("otel.genai.capture.content", default: false)
        if settings.bool("otel.sdk.disabled", default: false) { return nil }
        let exporterText = settings.string("otel.traces.exporter", default: "none").lowercased()
        let exporter: Exporter
        switch exporterText {
        case "none": return nil
        case "otlp": exporter = .otlp
        default:
            settings.report("OTEL_TRACES_EXPORTER must be otlp or none; got \(exporterText.quotedForMessage)")
            return nil
        }
        var tracing = TracingSettings(exporter: exporter)
        tracing.capturesGenAIContent = capture
        if let specific = settings.string("otel.exporter.otlp.traces.endpoint") {
            tracing.endpoint = specific
            tracing.endpointIsSignalSpecific = true
        } else {
            tracing.endpoint = settings.string("otel.exporter.otlp.endpoint")
        }
        if let endpoint = tracing.endpoint, URL(string: endpoint)?.scheme.map({ ["http", "https"].contains($0) }) != true {
            settings.report("OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL; got \(endpoint.quotedForMessage)")
        }
        let protocolText = settings.string("otel.exporter.otlp.traces.protocol") ?? settings.string("otel.exporter.otlp.protocol", default: "http/protobuf")
        if let parsed = OTLPProtocol(rawValue: protocolText.lowercased()) {
            tracing.otlpProtocol = parsed
        } else {
            settings.report("OTEL_EXPORTER_OTLP_PROTOCOL must be grpc, http/protobuf or http/json; got \(protocolText.quotedForMessage)")
        }
        tracing.sampler = readSampler(settings)
        tracing.serviceName = settings.string("otel.service.name")
        for pair in settings.list("otel.resource.attributes") {
            let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty else {
                settings.report("OTEL_RESOURCE_ATTRIBUTES must be key=value pairs separated by commas; got \(pair.quotedForMessage)")
                continue
            }
            tracing.resourceAttributes[parts[0]] = parts[1].removingPercentEncoding ?? parts[1]
        }
        tracing.scheduleDelay = .milliseconds(settings.int("otel.bsp.schedule.delay", default: 100, range: 1...600_000))
        tracing.maxQueueSize = settings.int("otel.bsp.max.queue.size", default: 16384, range: 1...1_048_576)
        // A queue set smaller than the default batch (the specification's 2048, say) takes a batch
        // its own size; a batch set larger than the queue is a mistake.
        let batchIsSet = settings.string("otel.bsp.max.export.batch.size") != nil
        tracing.maxExportBatchSize = settings.int(
            "otel.bsp.max.export.batch.size", default: min(4096, tracing.maxQueueSize), range: 1...1_048_576
        )
        if batchIsSet, tracing.maxExportBatchSize > tracing.maxQueueSize {
            settings.report("OTEL_BSP_MAX_EXPORT_BATCH_SIZE (\(tracing.maxExportBatchSize)) must not exceed OTEL_BSP_MAX_QUEUE_SIZE (\(tracing.maxQueueSize))")
        }
        tracing.exportTimeout = .milliseconds(settings.int("otel.bsp.export.timeout", default: 30_000, range: 1...600_000))
        return tracing
    }

    static func readSampler(_ settings: SettingsReader) -> Sampler {
        let name = settings.string("otel.traces.sampler", default: "parentbased_always_on").lowercased()
        func ratio() -> Double {
            guard let text = settings.string("otel.traces.sampler.arg") else { return 1 }
            guard let value = Double(text), (0...1).contains(value) else {
                settings.report("OTEL_TRACES_SAMPLER_ARG must be a probability in 0...1; got \(text.quotedForMessage)")
                return 1
            }
            return value
        }
        switch name {
        case "always_on": return .alwaysOn
        case "always_off": return .alwaysOff
        case "traceidratio": return .ratio(ratio())
        case "parentbased_always_on": return .parentBasedAlwaysOn
        case "parentbased_always_off": return .parentBasedAlwaysOff
        case "parentbased_traceidratio": return .parentBasedRatio(ratio())
        default:
            settings.report(
                "OTEL_TRACES_SAMPLER must be always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio; got \(name.quotedForMessage)"
            )
            return .parentBasedAlwaysOn
        }
    }
}
