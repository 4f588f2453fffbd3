import Foundation
import Glibc
import Logging
import Synchronization
import Testing
import TestSupport
import Tracing
@testable import Platform

@Suite("configuration center", .serialized)
struct ConfigurationCenterTests {
    static func write(_ text: String, to path: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path + ".new"))
        guard rename(path + ".new", path) == 0 else { throw EtcdServerError("rename failed: \(errno)") }
    }

    static func waitUntil(_ what: String, timeout: Duration = .seconds(10), _ condition: () async -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if await condition() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw EtcdServerError("timed out waiting: \(what)")
    }

    @Test("environment over etcd over the file; an etcd change applies, a bad one is refused and the running value stays")
    func precedenceAndRefusal() async throws {
        let etcd = try EtcdServer()
        defer { etcd.remove() }
        try await etcd.start()
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = directory.path + "/settings.yaml"
        try Self.write("limits:\n  a: 1\n  b: 1\n  c: 1\n", to: file)
        let store = EtcdClient(endpoints: [etcd.endpoint])
        try await store.write(["/p/config/limits.b": "2", "/p/config/limits.c": "2"])
        let configuration = try await ConfigurationLoader.load(environment: ["LIMITS_C": "3"], envFile: nil, configFile: file, pollInterval: .milliseconds(50))
        let center = ConfigurationCenter(configuration: configuration, etcd: (store, "/p"), logger: Logger(label: "test"))
        await center.loadInitial()
        let applied = LiveSetting([0, 0, 0])
        try center.register("limits") { reader in
            let values = ["a", "b", "c"].map { reader.int("limits.\($0)", default: 0, range: 0...100) }
            try reader.finish()
            return { applied.replace(with: values) }
        }
        #expect(applied.current == [1, 2, 3], "file, etcd, environment")
        center.markStarted()
        let running = Task { try await center.run() }
        defer { running.cancel() }

        try await store.write(["/p/config/limits.a": "7", "/p/config/limits.c": "9"])
        try await Self.waitUntil("the etcd change applied") { applied.current == [7, 2, 3] }
        let version = try #require(center.status.applied?.version)

        try await store.write(["/p/config/limits.a": "8", "/p/config/limits.b": "500"])
        try await Self.waitUntil("the bad change refused") { center.status.refused != nil }
        #expect(applied.current == [7, 2, 3], "refused whole: a stays too")
        #expect(center.status.applied?.version == version)
        #expect(center.status.refused?.problems == ["LIMITS_B must be an integer in 0...100, got '500'"])

        // Deleting the etcd keys brings the file's values back.
        try await store.write(["/p/config/limits.a": nil, "/p/config/limits.b": nil])
        try await Self.waitUntil("the file's values again") { applied.current == [1, 1, 3] }
    }

    @Test("a file may write a key flat, where nesting cannot (otel.traces.sampler and its .arg)")
    func flatKeysInFiles() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        for (name, text) in [
            ("flat.yaml", "otel.traces.sampler: traceidratio\notel.traces.sampler.arg: 0.25\n"),
            ("flat.json", #"{"otel.traces.sampler": "traceidratio", "otel.traces.sampler.arg": 0.25}"#),
        ] {
            let file = directory.path + "/" + name
            try Self.write(text, to: file)
            let configuration = try await ConfigurationLoader.load(environment: [:], envFile: nil, configFile: file)
            let settings = SettingsReader(configuration.reader)
            #expect(ObservabilitySettings.Dynamic.read(settings).sampler == .ratio(0.25), "\(name)")
            try settings.finish()
        }
    }

    @Test("readers see the old settings or the new ones, never a mix")
    func atomicChange() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = directory.path + "/settings.json"
        try Self.write(#"{"pair": {"left": 0, "right": 0}}"#, to: file)
        let configuration = try await ConfigurationLoader.load(environment: [:], envFile: nil, configFile: file, pollInterval: .milliseconds(20))
        let center = ConfigurationCenter(configuration: configuration, logger: Logger(label: "test"))
        let pair = LiveSetting((left: 0, right: 0))
        try center.register("pair") { reader in
            let left = reader.int("pair.left", default: -1, range: 0...1000)
            let right = reader.int("pair.right", default: -1, range: 0...1000)
            try reader.finish()
            return { pair.replace(with: (left, right)) }
        }
        center.markStarted()
        let running = Task { try await center.run() }
        defer { running.cancel() }
        let mixed = Atomic<Int>(0)
        // Reads all along, yielding its thread after each: Swift's pool has one thread per core,
        // and a task that never yields takes one from every other test of the process (until it
        // is cancelled, on every path).
        let reading = Task.detached {
            while !Task.isCancelled {
                let seen = pair.current
                if seen.left != seen.right { mixed.add(1, ordering: .relaxed) }
                await Task.yield()
            }
        }
        defer { reading.cancel() }
        for round in 1...10 {
            try Self.write(#"{"pair": {"left": \#(round), "right": \#(round)}}"#, to: file)
            try await Self.waitUntil("round \(round) applied") { pair.current.left == round }
        }
        reading.cancel()
        #expect(mixed.load(ordering: .relaxed) == 0)
        #expect(center.status.refused == nil)
    }
}

@Suite("sampling that configuration changes")
struct LiveSamplingTracerTests {
    /// Records what the sampler hands the pipeline: the parents it was told about.
    final class RecordingTracer: Tracer, Sendable {
        typealias Span = NoOpTracer.NoOpSpan
        let extracted = Mutex<[String]>([])
        /// Parents handed over marked unsampled (flags `00`): the traces dropped.
        var unsampledMarks: Int { extracted.withLock { $0.filter { $0.hasSuffix("-00") }.count } }

        func startSpan<Instant: TracerInstant>(
            _ operationName: String, context: @autoclosure () -> InstrumentationContext, ofKind kind: SpanKind,
            at instant: @autoclosure () -> Instant, function: String, file fileID: String, line: UInt
        ) -> NoOpTracer.NoOpSpan {
            NoOpTracer.NoOpSpan(context: context())
        }

        func extract<Carrier, Extract: Extractor>(_ carrier: Carrier, into context: inout InstrumentationContext, using extractor: Extract)
        where Extract.Carrier == Carrier {
            if let parent = extractor.extract(key: "traceparent", from: carrier) { extracted.withLock { $0.append(parent) } }
        }

        func inject<Carrier, Inject: Injector>(_ context: InstrumentationContext, into carrier: inout Carrier, using injector: Inject)
        where Inject.Carrier == Carrier {}

        func forceFlush() {}
    }

    struct HeaderExtractor: Extractor {
        func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
    }

    @Test("a root follows the sampler of the moment; a caller's decision stands unless the sampler ignores parents")
    func rootsFollowTheLiveSampler() {
        let base = RecordingTracer()
        let sampler = LiveSetting(TracingSettings.Sampler.parentBasedAlwaysOn)
        let tracer = LiveSamplingTracer(base: base, sampler: sampler)

        _ = tracer.startSpan("root", context: .topLevel)
        #expect(base.unsampledMarks == 0)
        sampler.replace(with: .parentBasedAlwaysOff)
        let root = tracer.startSpan("root", context: .topLevel)
        #expect(base.unsampledMarks == 1, "dropped: handed an unsampled parent")
        _ = tracer.startSpan("child", context: root.context)
        #expect(base.unsampledMarks == 1, "a child follows its root, decided once")

        var fromCaller = InstrumentationContext.topLevel
        tracer.extract(["traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"], into: &fromCaller, using: HeaderExtractor())
        _ = tracer.startSpan("server", context: fromCaller)
        #expect(base.unsampledMarks == 1, "parent-based: the caller sampled it, so it stays")
        sampler.replace(with: .alwaysOff)
        _ = tracer.startSpan("server", context: fromCaller)
        #expect(base.unsampledMarks == 2, "always_off drops even what the caller sampled")
        sampler.replace(with: .ratio(0))
        for _ in 0..<10 { _ = tracer.startSpan("root", context: .topLevel) }
        #expect(base.unsampledMarks == 12)
    }

    static func randomTraceparent() -> (header: String, traceID: String) {
        let hex = { (count: Int) in (0..<count).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined() }
        let traceID = hex(16)
        return ("00-\(traceID)-\(hex(8))-01", traceID)
    }

    @Test("traceidratio decides a caller's trace from its ID: every process agrees, about the ratio is kept, and a dropped trace keeps its ID")
    func ratioDecidesFromTheTraceID() {
        let (first, second) = (RecordingTracer(), RecordingTracer())
        let sampler = LiveSetting(TracingSettings.Sampler.ratio(0.25))
        let tracers = [LiveSamplingTracer(base: first, sampler: sampler), LiveSamplingTracer(base: second, sampler: sampler)]
        var kept = 0
        for _ in 0..<2_000 {
            let trace = Self.randomTraceparent()
            var decisions: [Bool] = []
            for (tracer, base) in zip(tracers, [first, second]) {
                var context = InstrumentationContext.topLevel
                tracer.extract(["traceparent": trace.header], into: &context, using: HeaderExtractor())
                _ = tracer.startSpan("server", context: context)
                let last = base.extracted.withLock { $0.last } ?? ""
                let dropped = last.hasSuffix("-00")
                if dropped { #expect(last.hasPrefix("00-\(trace.traceID)-"), "a dropped trace keeps the caller's trace ID") }
                decisions.append(!dropped)
            }
            #expect(decisions[0] == decisions[1], "two processes decided \(trace.traceID) differently")
            if decisions[0] { kept += 1 }
        }
        // 25% of 2,000 is 500 (standard deviation ~19).
        #expect((400...600).contains(kept), "\(kept) of 2,000 kept at 25%")

        // The last 8 bytes, big-endian, without their lowest bit, under ratio × 2^63.
        let low = "00-00000000000000000000000000000000-0000000000000001-01"
        let high = "00-0000000000000000ffffffffffffffff-0000000000000001-01"
        for (header, keeps) in [(low, true), (high, false)] {
            var context = InstrumentationContext.topLevel
            tracers[0].extract(["traceparent": header], into: &context, using: HeaderExtractor())
            let before = first.extracted.withLock { $0.count }
            _ = tracers[0].startSpan("server", context: context)
            #expect((first.extracted.withLock { $0.count } == before) == keeps, "\(header)")
        }
    }

    @Test("a call between the platform's components keeps its caller's decision, whatever the sampler; a call without a trace is a root")
    func componentsTrustTheirCallers() {
        let base = RecordingTracer()
        let sampler = LiveSetting(TracingSettings.Sampler.alwaysOff)
        let tracer = LiveSamplingTracer(base: base, sampler: sampler)

        var fromComponent = tracer.extracting(from: ["traceparent": Self.randomTraceparent().header], using: HeaderExtractor())
        fromComponent.trustCallerSampling()
        _ = tracer.startSpan("service", context: fromComponent)
        #expect(base.unsampledMarks == 0, "the calling component sampled it")

        let outside = tracer.extracting(from: ["traceparent": Self.randomTraceparent().header], using: HeaderExtractor())
        _ = tracer.startSpan("gateway", context: outside)
        #expect(base.unsampledMarks == 1, "an outside caller's decision does not stand against always_off")

        var untraced = tracer.extracting(from: [:], using: HeaderExtractor())
        untraced.trustCallerSampling()
        _ = tracer.startSpan("service", context: untraced)
        #expect(base.unsampledMarks == 2, "nothing to trust: the sampler decides")
    }
}
