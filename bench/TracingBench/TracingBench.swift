import ArgumentParser
import Foundation
import Logging
import OTel
import Platform
import ServiceLifecycle
import Synchronization
import Tracing

/// The CPU one span costs, from its start to its export, as the platform's tracing pipeline makes
/// it (its sampler, spans ended in bursts, swift-otel's pipeline on its paced thread) or, with
/// `--bare`, as swift-otel makes it with its defaults. Spans go over OTLP/HTTP to `--endpoint`, a
/// sink that answers 200, at `--rate` spans a second; the same loop without a tracer is measured
/// first and taken off. A span the pipeline dropped (its queue full) is reported, not hidden.
@main
struct TracingBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tracing-bench")

    @Option(help: "OTLP/HTTP endpoint (base URL) of a sink.") var endpoint: String
    @Option(help: "Spans to make.") var spans = 100_000
    @Option(help: "Attributes per span.") var attributes = 5
    @Option(help: "Tasks making spans at once.") var tasks = 2
    @Option(help: "Spans a second, all tasks together.") var rate = 10_000
    @Flag(help: "swift-otel's own pipeline, without the platform's wrappers and paced thread.") var bare = false
    @Option(help: "OTEL_BSP_SCHEDULE_DELAY in milliseconds (default: the platform's; swift-otel's with --bare).") var scheduleDelay: Int?
    @Option(help: "OTEL_BSP_MAX_QUEUE_SIZE.") var maxQueueSize: Int?
    @Option(help: "OTEL_BSP_MAX_EXPORT_BATCH_SIZE.") var maxExportBatchSize: Int?

    func run() async throws {
        let drops = DropCount()
        let logger = Logger(label: "tracing-bench") { _ in DropCountingLogHandler(drops: drops) }
        let (tracer, services) = try makeTracer(logger: logger)
        let group = ServiceGroup(configuration: .init(services: services.map { .init(service: $0) }, logger: logger))
        let running = Task { try await group.run() }
        try await Task.sleep(for: .milliseconds(300))

        let loopOnly = try await measure(NoOpTracer())
        let traced = try await measure(tracer)
        await group.triggerGracefulShutdown()
        _ = try? await running.value

        let perSpan = (traced - loopOnly) * 1e6 / Double(spans)
        let pipeline = bare ? "swift-otel alone" : "platform pipeline"
        print("\(pipeline): \(spans) spans at \(rate)/s, \(attributes) attributes each: \(String(format: "%.1f", perSpan)) µs of CPU per span; \(drops.value) dropped")
    }

    private func makeTracer(logger: Logger) throws -> (any Tracer, [any Service]) {
        if bare {
            var configuration = OTel.Configuration.default
            configuration.metrics.enabled = false
            configuration.logs.enabled = false
            configuration.diagnosticLogger = .custom(logger)
            configuration.diagnosticLogLevel = .warning
            configuration.traces.exporter = .otlp
            configuration.traces.otlpExporter.protocol = .httpProtobuf
            configuration.traces.otlpExporter.endpoint = endpoint + "/v1/traces"
            if let scheduleDelay { configuration.traces.batchSpanProcessor.scheduleDelay = .milliseconds(scheduleDelay) }
            if let maxQueueSize { configuration.traces.batchSpanProcessor.maxQueueSize = maxQueueSize }
            if let maxExportBatchSize { configuration.traces.batchSpanProcessor.maxExportBatchSize = maxExportBatchSize }
            let backend = try OTel.makeTracingBackend(configuration: configuration)
            return (backend.factory, [backend.service])
        }
        var tracing = TracingSettings(exporter: .otlp, endpoint: endpoint, otlpProtocol: .httpProtobuf)
        if let scheduleDelay { tracing.scheduleDelay = .milliseconds(scheduleDelay) }
        if let maxQueueSize { tracing.maxQueueSize = maxQueueSize }
        if let maxExportBatchSize { tracing.maxExportBatchSize = maxExportBatchSize }
        let runtime = ObservabilityRuntime(settings: ObservabilitySettings(tracing: tracing), sharedProcess: false, logger: logger)
        let tracer = try runtime.telemetry(component: "bench").tracer
        return (tracer, runtime.services)
    }

    /// The process's CPU seconds while `spans` spans are made with `tracer` at `rate`, and for the
    /// six seconds after (time for the pipeline to export what is left, at any schedule delay up to 5 s).
    private func measure(_ tracer: any Tracer) async throws -> Double {
        let perTask = spans / tasks
        let attributeCount = attributes
        let interval = Duration.seconds(Double(tasks) / Double(rate))
        let before = Self.cpuSeconds()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<tasks {
                group.addTask {
                    let clock = ContinuousClock()
                    var due = clock.now
                    for index in 0..<perTask {
                        due += interval
                        if index % 32 == 0, due > clock.now { try? await Task.sleep(until: due, clock: clock) }
                        let span = tracer.startSpan("GET /user/current", ofKind: .server)
                        span.updateAttributes { values in
                            for attribute in 0..<attributeCount { values["bench.attribute.\(attribute)"] = index &+ attribute }
                        }
                        span.end()
                    }
                }
            }
        }
        try await Task.sleep(for: .seconds(6))
        return Self.cpuSeconds() - before
    }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
}

/// Spans swift-otel reports dropped (`dropped_count` of its queue-full warnings).
final class DropCount: Sendable {
    private let count = Atomic<Int>(0)
    func add(_ dropped: Int) { count.add(dropped, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

struct DropCountingLogHandler: LogHandler {
    let drops: DropCount
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .warning

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        if let dropped = event.metadata?["dropped_count"] {
            drops.add(Int("\(dropped)") ?? 0)
        } else {
            FileHandle.standardError.write(Data("\(event.level): \(event.message)\n".utf8))
        }
    }
}
