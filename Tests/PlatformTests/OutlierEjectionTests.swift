import GRPCCore
import GRPCNIOTransportCore
import Logging
import Prometheus
import Tracing
import Synchronization
import Testing
@testable import Platform

@Suite("outlier ejection")
struct OutlierEjectionTests {
    let a = GRPCNIOTransportCore.SocketAddress.ipv4(host: "10.0.0.1", port: 9101)
    let b = GRPCNIOTransportCore.SocketAddress.ipv4(host: "10.0.0.2", port: 9101)

    func ejection(_ policy: OutlierEjection.Policy) -> OutlierEjection {
        OutlierEjection(service: "user-service", policy: policy, logger: Logger(label: "test"))
    }

    @Test("consecutive UNAVAILABLE or DEADLINE_EXCEEDED eject an instance; any answer in between resets the count")
    func consecutiveFailures() {
        let registry = PrometheusCollectorRegistry()
        let telemetry = Telemetry(component: "test", metrics: ObservabilityRuntime.prometheusFactory(registry), tracer: NoOpTracer())
        let ejection = OutlierEjection(
            service: "user-service", policy: .init(consecutiveFailures: 3, baseEjection: .seconds(60)), telemetry: telemetry, logger: Logger(label: "test")
        )
        ejection.recordCall(address: "10.0.0.1:9101", code: .unavailable)
        ejection.recordCall(address: "10.0.0.1:9101", code: .deadlineExceeded)
        ejection.recordCall(address: "10.0.0.1:9101", code: .notFound)  // the instance answered
        ejection.recordCall(address: "10.0.0.1:9101", code: .unavailable)
        ejection.recordCall(address: "10.0.0.1:9101", code: .unavailable)
        #expect(!ejection.isEjected("10.0.0.1:9101"))
        #expect(ejection.filter([a, b]) == [a, b])
        ejection.recordCall(address: "10.0.0.1:9101", code: .deadlineExceeded)
        #expect(ejection.isEjected("10.0.0.1:9101"))
        #expect(ejection.filter([a, b]) == [b])
        var exposition: [UInt8] = []
        registry.emit(into: &exposition)
        #expect(String(decoding: exposition, as: UTF8.self).contains(#"aisaas_service_instance_ejections_total{component="test",service="user-service",reason="failures"} 1"#))
    }

    @Test("DEADLINE_EXCEEDED the instance answered itself (a slow provider behind it) does not count against it")
    func answeredDeadlineShowsTheInstanceAlive() {
        let ejection = ejection(.init(consecutiveFailures: 2, baseEjection: .seconds(60)))
        for _ in 0..<5 { ejection.recordCall(address: "10.0.0.1:9101", code: .deadlineExceeded, answered: true) }
        #expect(!ejection.isEjected("10.0.0.1:9101"))
        ejection.recordCall(address: "10.0.0.1:9101", code: .deadlineExceeded, answered: false)
        ejection.recordCall(address: "10.0.0.1:9101", code: .deadlineExceeded, answered: false)
        #expect(ejection.isEjected("10.0.0.1:9101"), "this side's deadline passing twice")
        ejection.forget(address: "10.0.0.1:9101")
        #expect(!ejection.isEjected("10.0.0.1:9101"), "an instance that left is forgotten")
    }

    @Test("the ejection ends after its time and doubles while the instance keeps failing")
    func growingBackoff() {
        let clock = ManualClock()
        let ejection = OutlierEjection(
            service: "user-service", policy: .init(consecutiveFailures: 1, baseEjection: .seconds(1), maxEjection: .seconds(3)),
            logger: Logger(label: "test"), now: { clock.now }
        )
        ejection.recordCall(address: "10.0.0.1:9101", code: .unavailable)
        #expect(ejection.isEjected("10.0.0.1:9101"))
        clock.advance(.milliseconds(1100))
        #expect(!ejection.isEjected("10.0.0.1:9101"), "back after a second")
        ejection.recordCall(address: "10.0.0.1:9101", code: .unavailable)  // fails again: two seconds now
        clock.advance(.milliseconds(1900))
        #expect(ejection.isEjected("10.0.0.1:9101"), "the second ejection lasts longer")
        clock.advance(.milliseconds(200))
        #expect(!ejection.isEjected("10.0.0.1:9101"))
        ejection.recordCall(address: "10.0.0.1:9101", code: .unavailable)  // a third: four seconds, capped at three
        clock.advance(.milliseconds(2900))
        #expect(ejection.isEjected("10.0.0.1:9101"))
        clock.advance(.milliseconds(200))
        #expect(!ejection.isEjected("10.0.0.1:9101"), "at most the maximum")
        ejection.recordCall(address: "10.0.0.1:9101", code: nil)  // a success: the next ejection is short again
        ejection.recordCall(address: "10.0.0.1:9101", code: .unavailable)
        clock.advance(.milliseconds(1100))
        #expect(!ejection.isEjected("10.0.0.1:9101"))
    }

    @Test("NOT_SERVING ejects at once and SERVING brings back; never all instances; changes are signalled")
    func healthAndFloor() async throws {
        let ejection = ejection(.init())
        var changes = ejection.changes().makeAsyncIterator()
        ejection.recordHealth(address: "10.0.0.2:9101", serving: false)
        #expect(await changes.next() != nil)
        #expect(ejection.filter([a, b]) == [a])
        ejection.recordHealth(address: "10.0.0.1:9101", serving: false)
        #expect(ejection.filter([a, b]) == [a, b], "with every instance out, all stay in")
        ejection.recordHealth(address: "10.0.0.1:9101", serving: true)
        ejection.recordHealth(address: "10.0.0.2:9101", serving: true)
        #expect(ejection.filter([a, b]) == [a, b])
        #expect(!ejection.isEjected("10.0.0.2:9101"))
    }

    @Test("ejecting endpoints push the set without the ejected instances")
    func ejectingEndpoints() async throws {
        let ejection = ejection(.init())
        let (a, b) = (self.a, self.b)
        let endpoints = ServiceEndpoints(name: "user-service", describedAs: "test") { [a, b] }.ejecting(ejection, refresh: .seconds(60))
        let resolver = ServiceEndpointsResolverFactory().resolver(for: ServiceEndpointsTarget(endpoints))
        #expect(resolver.updateMode == .push)
        var names = resolver.names.makeAsyncIterator()
        #expect(try await names.next()?.endpoints == [Endpoint(addresses: [a]), Endpoint(addresses: [b])])
        ejection.recordHealth(address: "10.0.0.1:9101", serving: false)
        #expect(try await names.next()?.endpoints == [Endpoint(addresses: [b])])
        ejection.recordHealth(address: "10.0.0.1:9101", serving: true)
        #expect(try await names.next()?.endpoints == [Endpoint(addresses: [a]), Endpoint(addresses: [b])])
    }
}

/// Time that moves only when told.
final class ManualClock: Sendable {
    private let current = Mutex(ContinuousClock.now)

    var now: ContinuousClock.Instant { current.withLock { $0 } }

    func advance(_ duration: Duration) {
        current.withLock { $0 += duration }
    }
}
