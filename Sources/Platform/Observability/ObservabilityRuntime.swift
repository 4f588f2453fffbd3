import Foundation
import Configuration
import CoreMetrics
import Logging
import OTel
import Prometheus
import Synchronization
import ServiceLifecycle
import Tracing

/// A process's metrics registry and tracers, made from `ObservabilitySettings`: one Prometheus
/// registry with its `/metrics` listener, and one OpenTelemetry tracing pipeline per component
/// (each with its own `service.name`). `services` run them; list them first so that they stop
/// last, after the components have finished their spans.
public final class ObservabilityRuntime: Sendable {
    public let settings: ObservabilitySettings
    /// The registry `/metrics` shows; nil when metrics are off.
    public let registry: PrometheusCollectorRegistry?
    private let factory: any MetricsFactory
    private let logger: Logger
    /// In `aisaas all`, where several components share the process.
    private let sharedProcess: Bool
    private let tracingServices = Mutex<[any Service]>([])
    private let onMetricsRunning: @Sendable (Int) async -> Void
    private let beforeScrape = ScrapeHooks()
    /// `ACCESS_LOG` and `OTEL_TRACES_SAMPLER`: the configuration center may change them.
    public let accessLog: LiveFlag
    public let sampler: LiveSetting<TracingSettings.Sampler>

    public init(
        settings: ObservabilitySettings, sharedProcess: Bool, logger: Logger,
        onMetricsRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) {
        self.settings = settings
        self.logger = logger
        self.sharedProcess = sharedProcess
        self.onMetricsRunning = onMetricsRunning
        accessLog = LiveFlag(settings.accessLog)
        sampler = LiveSetting(settings.tracing?.sampler ?? .parentBasedAlwaysOn)
        if settings.metricsListen != nil {
            let registry = PrometheusCollectorRegistry()
            self.registry = registry
            factory = Self.prometheusFactory(registry)
        } else {
            registry = nil
            factory = NOOPMetricsHandler.instance
        }
    }

    /// The runtime `config` describes (METRICS_*, ACCESS_LOG, OTEL_*); a bad value is a
    /// configuration error.
    public static func read(
        config: ConfigReader, sharedProcess: Bool, logger: Logger, onMetricsRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws -> ObservabilityRuntime {
        let reader = SettingsReader(config)
        let settings = ObservabilitySettings.read(reader)
        try reader.finish()
        return ObservabilityRuntime(settings: settings, sharedProcess: sharedProcess, logger: logger, onMetricsRunning: onMetricsRunning)
    }

    /// What `component` reports to. With tracing on, each call makes that component's pipeline.
    public func telemetry(component: String) throws -> Telemetry {
        var tracer: any Tracer = NoOpTracer()
        if let tracing = settings.tracing {
            // `aisaas` withholds these from swift-otel before any thread starts
            // (StartupEnvironment); a program that did not still gets the platform's service
            // names and one sampling, at the cost of changing the environment later.
            for name in StartupEnvironment.visibleToLibraries { unsetenv(name) }
            let backend = try OTel.makeTracingBackend(configuration: configuration(tracing, component: component))
            let (bursts, ended) = Self.burstEnding(backend.factory)
            tracer = LiveSamplingTracer(base: bursts, sampler: sampler)
            // After the pipeline: stopped first, its last spans still reach the pipeline's final export.
            tracingServices.withLock { $0.append(contentsOf: [PacedService(backend.service), ended] as [any Service]) }
        }
        return Telemetry(
            component: component, metrics: factory, tracer: tracer,
            capturesGenAIContent: settings.tracing?.capturesGenAIContent ?? false, accessLog: accessLog,
            beforeScrape: beforeScrape
        )
    }

    private static func burstEnding<T: Tracer>(_ tracer: T) -> (BurstEndingTracer<T>, EndedSpans<T.Span>) {
        let ended = EndedSpans<T.Span>()
        return (BurstEndingTracer(base: tracer, ended: ended), ended)
    }

    /// The process's registry without a component label (settings reloads, for example).
    public var processMetrics: any MetricsFactory { factory }

    /// Puts the access log switch and the sampler of `settings` in place (a configuration change).
    public func apply(_ settings: ObservabilitySettings.Dynamic) {
        accessLog.set(settings.accessLog)
        sampler.replace(with: settings.sampler)
    }

    /// The metrics listener and the tracing pipelines made so far.
    public var services: [any Service] {
        var services = tracingServices.withLock { $0 }
        if let registry, let listen = settings.metricsListen {
            services.append(MetricsEndpoint(
                registry: registry, build: .current(commit: settings.buildCommit), listen: listen, beforeScrape: beforeScrape, logger: logger,
                onRunning: onMetricsRunning
            ))
        }
        return services
    }

    private func configuration(_ tracing: TracingSettings, component: String) -> OTel.Configuration {
        var configuration = OTel.Configuration.default
        configuration.metrics.enabled = false
        configuration.logs.enabled = false
        configuration.traces.enabled = true
        let componentMetrics = ComponentMetricsFactory(component: component, base: factory)
        configuration.diagnosticLogger = .custom(Logger(label: logger.label) { _ in SpanDropCounter(base: logger.handler, metrics: componentMetrics) })
        configuration.diagnosticLogLevel = .warning
        configuration.resourceAttributes = tracing.resourceAttributes
        configuration.resourceAttributes["service.version"] = BuildInfo.platformVersion
        if sharedProcess {
            configuration.serviceName = component
            if let namespace = tracing.serviceName { configuration.resourceAttributes["service.namespace"] = namespace }
        } else {
            configuration.serviceName = tracing.serviceName ?? component
        }
        configuration.traces.exporter = .otlp
        configuration.traces.batchSpanProcessor.scheduleDelay = tracing.scheduleDelay
        configuration.traces.batchSpanProcessor.maxQueueSize = tracing.maxQueueSize
        configuration.traces.batchSpanProcessor.maxExportBatchSize = tracing.maxExportBatchSize
        configuration.traces.batchSpanProcessor.exportTimeout = tracing.exportTimeout
        switch tracing.otlpProtocol {
        case .grpc: configuration.traces.otlpExporter.protocol = .grpc
        case .httpProtobuf: configuration.traces.otlpExporter.protocol = .httpProtobuf
        case .httpJSON: configuration.traces.otlpExporter.protocol = .httpJSON
        }
        if let endpoint = tracing.endpoint {
            if tracing.endpointIsSignalSpecific || tracing.otlpProtocol == .grpc {
                configuration.traces.otlpExporter.endpoint = endpoint
            } else {
                configuration.traces.otlpExporter.endpoint = endpoint.hasSuffix("/") ? endpoint + "v1/traces" : endpoint + "/v1/traces"
            }
        } else if tracing.otlpProtocol == .grpc {
            configuration.traces.otlpExporter.endpoint = "http://localhost:4317"
        }
        // Sampling is `LiveSamplingTracer`'s; this pipeline keeps the decision it is handed.
        configuration.traces.sampler = .parentBasedAlwaysOn
        return configuration
    }

    /// swift-metrics on the registry, with buckets for what the platform measures: latencies
    /// from a tenth of a millisecond (the gateway's own work) to minutes (long speech), sizes in
    /// bytes, and group-commit batches.
    static func prometheusFactory(_ registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
            .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(120),
        ]
        let bytes: [Double] = [64, 256, 1024, 4096, 16384, 65536, 262_144, 1_048_576, 4_194_304, 16_777_216, 67_108_864]
        factory.valueHistogramBuckets = [
            "http_server_request_body_size_bytes": bytes,
            "http_server_response_body_size_bytes": bytes,
            "aisaas_db_write_batch_size": [1, 2, 4, 8, 16, 32, 64, 128],
        ]
        return factory
    }
}

/// swift-otel's pipeline on a `PacedTaskExecutor`: its tasks wake in rounds, not for every span.
private struct PacedService: Service {
    static let executor = PacedTaskExecutor(interval: .milliseconds(2), loop: PacedTaskExecutor.sharedLoop)
    let base: any Service

    init(_ base: any Service) {
        self.base = base
    }

    func run() async throws {
        try await withTaskExecutorPreference(Self.executor) { try await base.run() }
    }
}
