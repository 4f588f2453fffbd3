import InMemoryTracing
import Logging
import ServiceLifecycle
import Testing
import Tracing

@testable import Platform

@Suite("spans ended in bursts")
struct BurstEndingTracerTests {
    @Test func endedSpansReachThePipelineAtTheNextBurstWithTheirOwnEndTimes() {
        let base = InMemoryTracer()
        let ended = EndedSpans<InMemorySpan>(interval: .seconds(3600))
        let tracer = BurstEndingTracer(base: base, ended: ended)
        let span = tracer.startSpan("GET /user/current", ofKind: .server)
        span.attributes["http.response.status_code"] = 200
        let endedAt = DefaultTracerClock.now
        span.end(at: endedAt)
        #expect(base.finishedSpans.isEmpty)
        ended.handOver()
        let finished = base.finishedSpans
        #expect(finished.count == 1)
        #expect(finished.first?.operationName == "GET /user/current")
        #expect(finished.first?.attributes["http.response.status_code"]?.toSpanAttribute() == 200)
        #expect(finished.first?.endInstant.nanosecondsSinceEpoch == endedAt.nanosecondsSinceEpoch)
        ended.handOver()
        #expect(base.finishedSpans.count == 1)
    }

    @Test func theServiceHandsOverWhileItRunsAndWhenItStops() async throws {
        let base = InMemoryTracer()
        let ended = EndedSpans<InMemorySpan>(interval: .milliseconds(10))
        let tracer = BurstEndingTracer(base: base, ended: ended)
        let group = ServiceGroup(services: [ended], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            tracer.startSpan("while running", ofKind: .internal).end()
            var waited = 0
            while base.finishedSpans.isEmpty, waited < 500 {
                try await Task.sleep(for: .milliseconds(10))
                waited += 1
            }
            #expect(base.finishedSpans.map(\.operationName) == ["while running"])
            tracer.startSpan("at shutdown", ofKind: .internal).end()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(base.finishedSpans.map(\.operationName).last == "at shutdown")
    }
}
