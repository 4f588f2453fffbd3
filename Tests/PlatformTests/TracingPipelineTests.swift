import Logging
import Prometheus
import ServiceLifecycle
import Synchronization
import Testing
import TestSupport
import Tracing

@testable import Platform

@Suite("the tracing pipeline under load")
struct TracingPipelineTests {
    /// 12,000 spans at 20,000 a second, in bursts, as two busy request threads end them: with the
    /// specification's batch settings swift-otel's queue (2,048) stayed full under such a load,
    /// one batch of 512 out per export, and most spans were dropped (about half of a benchmark
    /// run's). 12,000 fit the default queue even if a starved pipeline thread took them all at once.
    @Test func everySpanOfALoadedSecondIsExported() async throws {
        let receiver = try await OTLPTraceReceiver.start()
        let warnings = WarningLog()
        let logger = Logger(label: "tracing-pipeline-test") { _ in warnings }
        var tracing = TracingSettings(exporter: .otlp, endpoint: receiver.endpoint, otlpProtocol: .httpProtobuf)
        tracing.serviceName = "pipeline-test"
        let runtime = ObservabilityRuntime(settings: ObservabilitySettings(tracing: tracing), sharedProcess: false, logger: logger)
        let tracer = try runtime.telemetry(component: "pipeline-test").tracer
        let group = ServiceGroup(configuration: .init(services: runtime.services.map { .init(service: $0) }, logger: logger))
        let spansPerTask = 6_000
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            await withTaskGroup(of: Void.self) { makers in
                for maker in 0..<2 {
                    makers.addTask {
                        for index in 0..<spansPerTask {
                            let span = tracer.startSpan("load \(maker)", ofKind: .server)
                            span.updateAttributes { attributes in
                                attributes["http.request.method"] = "GET"
                                attributes["url.path"] = "/user/current"
                                attributes["http.response.status_code"] = 200
                                attributes["load.index"] = index
                            }
                            span.end()
                            // A burst of 500 spans every 50 ms: 20,000 a second from the two.
                            if index % 500 == 499 { try? await Task.sleep(for: .milliseconds(50)) }
                        }
                    }
                }
            }
            // Counted, not listed: a failure here would otherwise print thousands of spans.
            let deadline = ContinuousClock.now + .seconds(30)
            while receiver.spans.count < 2 * spansPerTask, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(receiver.spans.count == 2 * spansPerTask)
            #expect(warnings.messages.filter { $0.contains("dropped") }.isEmpty, "\(warnings.messages.prefix(3))")
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        await receiver.stop()
    }

    /// A queue too small for a burst: the spans swift-otel drops are counted in
    /// `aisaas_trace_spans_dropped_total`, as many as its warnings report, and the receiver gets
    /// the rest.
    @Test func droppedSpansAreCounted() async throws {
        let receiver = try await OTLPTraceReceiver.start()
        let warnings = WarningLog()
        let logger = Logger(label: "tracing-pipeline-test") { _ in warnings }
        var tracing = TracingSettings(exporter: .otlp, endpoint: receiver.endpoint, otlpProtocol: .httpProtobuf)
        tracing.scheduleDelay = .seconds(60)
        tracing.maxQueueSize = 100
        tracing.maxExportBatchSize = 100
        let settings = ObservabilitySettings(metricsListen: HostPort(host: "127.0.0.1", port: 0), tracing: tracing)
        let runtime = ObservabilityRuntime(settings: settings, sharedProcess: false, logger: logger)
        let tracer = try runtime.telemetry(component: "pipeline-test").tracer
        let group = ServiceGroup(configuration: .init(services: runtime.services.map { .init(service: $0) }, logger: logger))
        let made = 2_000
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            for index in 0..<made {
                tracer.startSpan("burst", ofKind: .internal).end()
                if index % 500 == 499 { try await Task.sleep(for: .milliseconds(100)) }
            }
            try await Task.sleep(for: .milliseconds(300))
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        let reported = warnings.droppedCounts.reduce(0, +)
        let counted = try #require(Self.counter("aisaas_trace_spans_dropped_total", labels: #"component="pipeline-test",reason="queue_full""#, in: runtime.registry))
        #expect(Self.counter("aisaas_trace_spans_dropped_total", labels: #"component="pipeline-test",reason="export_failed""#, in: runtime.registry) == 0)
        #expect(reported > 0)
        #expect(counted == reported)
        #expect(receiver.spans.count + counted <= made)
        #expect(receiver.spans.count >= 100)
        await receiver.stop()
    }

    /// A counter's value for `labels` (in the order `/metrics` shows them) in `registry`.
    static func counter(_ name: String, labels: String, in registry: PrometheusCollectorRegistry?) -> Int? {
        guard let registry else { return nil }
        var text: [UInt8] = []
        registry.emit(into: &text)
        let prefix = "\(name){\(labels)} "
        for line in String(decoding: text, as: UTF8.self).split(separator: "\n") where line.hasPrefix(prefix) {
            return Int(line.dropFirst(prefix.count))
        }
        return nil
    }

    /// swift-otel's two warnings of lost spans, as its batch processor words them (1.6): a batch
    /// that found the queue full (`dropped_count` in the line) and a batch whose export failed
    /// (`batch_size` on the logger). Other lines pass through uncounted.
    @Test func bothKindsOfLostSpansAreCounted() {
        let registry = PrometheusCollectorRegistry()
        let warnings = WarningLog()
        var logger = Logger(label: "swift-otel") { _ in
            SpanDropCounter(base: warnings, metrics: ComponentMetricsFactory(component: "c", base: PrometheusMetricsFactory(registry: registry)))
        }
        logger.logLevel = .error  // OTEL_LOG_LEVEL=error: the lines are not written, the spans still counted
        logger.warning("Spans were dropped this iteration because queue was full", metadata: ["queue_size": "2048", "dropped_count": "59"])
        logger.warning("Spans were dropped this iteration because queue was full", metadata: ["queue_size": "2048", "dropped_count": "41"])
        var exporting = logger
        exporting[metadataKey: "batch_size"] = "512"
        exporting.warning("Failed to export batch.", metadata: ["error": "connection refused"])
        exporting.warning("Exported batch.")
        #expect(Self.counter("aisaas_trace_spans_dropped_total", labels: #"component="c",reason="queue_full""#, in: registry) == 100)
        #expect(Self.counter("aisaas_trace_spans_dropped_total", labels: #"component="c",reason="export_failed""#, in: registry) == 512)
        #expect(warnings.messages.isEmpty)
        logger.logLevel = .warning
        logger.warning("Spans were dropped this iteration because queue was full", metadata: ["dropped_count": "1"])
        #expect(warnings.messages.count == 1)
        #expect(Self.counter("aisaas_trace_spans_dropped_total", labels: #"component="c",reason="queue_full""#, in: registry) == 101)
    }

    @Test func batchSettingsAreReadAndChecked() async throws {
        func read(_ environment: [String: String]) async throws -> (TracingSettings?, [String]) {
            let configuration = try await ConfigurationLoader.load(environment: environment.merging(["OTEL_TRACES_EXPORTER": "otlp"]) { $1 }, envFile: nil, configFile: nil)
            let settings = SettingsReader(configuration.reader)
            let tracing = ObservabilitySettings.read(settings).tracing
            do {
                try settings.finish()
                return (tracing, [])
            } catch let error as ConfigurationError {
                return (tracing, error.problems)
            }
        }
        let (defaults, none) = try await read([:])
        #expect(none.isEmpty)
        #expect(defaults?.scheduleDelay == .milliseconds(100))
        #expect(defaults?.maxExportBatchSize == 4096)
        #expect(defaults?.maxQueueSize == 16384)
        #expect(defaults?.exportTimeout == .seconds(30))

        let (set, fine) = try await read([
            "OTEL_BSP_SCHEDULE_DELAY": "5000", "OTEL_BSP_MAX_QUEUE_SIZE": "2048",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "512", "OTEL_BSP_EXPORT_TIMEOUT": "10000",
        ])
        #expect(fine.isEmpty)
        #expect(set?.scheduleDelay == .seconds(5))
        #expect(set?.maxQueueSize == 2048)
        #expect(set?.maxExportBatchSize == 512)
        #expect(set?.exportTimeout == .seconds(10))

        // The specification's queue alone: the batch follows it down.
        let (smallQueue, fits) = try await read(["OTEL_BSP_MAX_QUEUE_SIZE": "2048"])
        #expect(fits.isEmpty)
        #expect(smallQueue?.maxQueueSize == 2048)
        #expect(smallQueue?.maxExportBatchSize == 2048)

        let (_, problems) = try await read(["OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "200"])
        #expect(problems.contains { $0.contains("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") && $0.contains("OTEL_BSP_MAX_QUEUE_SIZE") })
        let (_, zero) = try await read(["OTEL_BSP_MAX_QUEUE_SIZE": "0"])
        #expect(zero.contains { $0.contains("OTEL_BSP_MAX_QUEUE_SIZE") })
    }
}

/// The warnings the pipeline logs (swift-otel reports dropped spans as warnings).
private final class WarningLog: LogHandler, Sendable {
    private let lines = Mutex<[Line]>([])
    var messages: [String] { lines.withLock { $0.map(\.text) } }

    var metadata: Logger.Metadata {
        get { [:] }
        set {}
    }

    var logLevel: Logger.Level {
        get { .warning }
        set {}
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { nil }
        set {}
    }

    /// The `dropped_count` of each warning that had one.
    var droppedCounts: [Int] {
        lines.withLock { $0.compactMap(\.dropped) }
    }

    func log(event: LogEvent) {
        guard event.level >= .warning else { return }
        var dropped: Int?
        if case .string(let text)? = event.metadata?["dropped_count"] { dropped = Int(text) }
        let line = Line(text: "\(event.message) \(event.metadata ?? [:])", dropped: dropped)
        lines.withLock { $0.append(line) }
    }

    struct Line {
        var text: String
        var dropped: Int?
    }
}
