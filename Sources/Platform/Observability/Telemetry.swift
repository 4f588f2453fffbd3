import CoreMetrics
import Logging
import Synchronization
import Tracing

/// What one component (gateway, user service, AI service) reports to: the metrics factory whose
/// series carry its `component` label, and the tracer whose spans name it as `service.name`.
/// Built once per process from `ObservabilitySettings` and handed to each component's `build…`,
/// so that the three components of `aisaas all` keep their own names, and tests get registries
/// and tracers of their own instead of the process-wide ones.
public struct Telemetry: Sendable {
    /// The component's name: `gateway`, `user-service` or `ai-service`.
    public var component: String
    public var metrics: any MetricsFactory
    public var tracer: any Tracer
    /// `OTEL_GENAI_CAPTURE_CONTENT`: prompts and completions go into provider spans only when set.
    public var capturesGenAIContent: Bool
    /// `ACCESS_LOG`: one line per HTTP request (a switch the configuration center may flip).
    public var accessLog: Bool { accessLogSwitch.isOn }
    public let accessLogSwitch: LiveFlag
    /// Run before each scrape: gauges that are read rather than counted (instance health).
    public let beforeScrape: ScrapeHooks

    public init(
        component: String, metrics: any MetricsFactory, tracer: any Tracer, capturesGenAIContent: Bool = false, accessLog: Bool = false,
        beforeScrape: ScrapeHooks = ScrapeHooks()
    ) {
        self.init(
            component: component, metrics: metrics, tracer: tracer, capturesGenAIContent: capturesGenAIContent, accessLog: LiveFlag(accessLog),
            beforeScrape: beforeScrape
        )
    }

    public init(
        component: String, metrics: any MetricsFactory, tracer: any Tracer, capturesGenAIContent: Bool = false, accessLog: LiveFlag,
        beforeScrape: ScrapeHooks = ScrapeHooks()
    ) {
        self.component = component
        self.metrics = ComponentMetricsFactory(component: component, base: metrics)
        self.tracer = tracer
        self.capturesGenAIContent = capturesGenAIContent
        self.accessLogSwitch = accessLog
        self.beforeScrape = beforeScrape
    }

    /// No metrics, no spans: what components built without telemetry (most tests) report to.
    public static func disabled(component: String) -> Telemetry {
        Telemetry(component: component, metrics: NOOPMetricsHandler.instance, tracer: NoOpTracer())
    }

    /// Whether spans are recorded at all; instrumentation skips work that only spans need.
    public var isTracing: Bool { !(tracer is NoOpTracer) }
}

/// Adds `component="…"` to every series a component makes, so one `/metrics` can serve all three
/// components of `aisaas all` and the same queries work on separate processes.
struct ComponentMetricsFactory: MetricsFactory {
    let component: String
    let base: any MetricsFactory

    init(component: String, base: any MetricsFactory) {
        // Wrapping twice would add the label twice.
        if let labelled = base as? ComponentMetricsFactory {
            self.base = labelled.base
        } else {
            self.base = base
        }
        self.component = component
    }

    private func labelled(_ dimensions: [(String, String)]) -> [(String, String)] {
        [("component", component)] + dimensions
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        base.makeCounter(label: label, dimensions: labelled(dimensions))
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        base.makeFloatingPointCounter(label: label, dimensions: labelled(dimensions))
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        base.makeMeter(label: label, dimensions: labelled(dimensions))
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        base.makeRecorder(label: label, dimensions: labelled(dimensions), aggregate: aggregate)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        base.makeTimer(label: label, dimensions: labelled(dimensions))
    }

    func destroyCounter(_ handler: any CounterHandler) { base.destroyCounter(handler) }
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) { base.destroyFloatingPointCounter(handler) }
    func destroyMeter(_ handler: any MeterHandler) { base.destroyMeter(handler) }
    func destroyRecorder(_ handler: any RecorderHandler) { base.destroyRecorder(handler) }
    func destroyTimer(_ handler: any TimerHandler) { base.destroyTimer(handler) }
}

/// Work that brings gauges up to date just before `/metrics` is read, so that values kept
/// elsewhere (an instance's health) need no bookkeeping on every change.
public final class ScrapeHooks: Sendable {
    private let hooks = Mutex<[@Sendable () -> Void]>([])

    public init() {}

    public func add(_ hook: @escaping @Sendable () -> Void) {
        hooks.withLock { $0.append(hook) }
    }

    public func run() {
        for hook in hooks.withLock({ $0 }) { hook() }
    }
}
