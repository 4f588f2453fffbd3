import CoreMetrics
import Platform
import Tracing

/// How credential checks are seen: each as a span (with tracing on) and each refusal counted
/// in `aisaas_ai_refusals_total{reason="signature"|"api_key"}`.
struct AuthInstruments: Sendable {
    let telemetry: Telemetry
    let signatureRefusals: Counter
    let apiKeyRefusals: Counter

    init(telemetry: Telemetry) {
        self.telemetry = telemetry
        signatureRefusals = Counter(label: "aisaas_ai_refusals_total", dimensions: [("reason", "signature")], factory: telemetry.metrics)
        apiKeyRefusals = Counter(label: "aisaas_ai_refusals_total", dimensions: [("reason", "api_key")], factory: telemetry.metrics)
    }

    /// Runs a check; a client error it throws (the credential was refused, not a service that
    /// is down) counts as a refusal.
    func checking<Value>(_ name: String, refusal: Counter, _ check: () async throws -> Value) async throws -> Value {
        guard telemetry.isTracing else { return try await counted(refusal, check) }
        let span = telemetry.tracer.startSpan(name, ofKind: .internal)
        defer { span.end() }
        do {
            return try await InstrumentationContext.$current.withValue(span.context) { try await counted(refusal, check) }
        } catch {
            span.setStatus(SpanStatus(code: .error, message: (error as? APIError).map { "\($0.status.code) \($0.message)" }))
            throw error
        }
    }

    private func counted<Value>(_ refusal: Counter, _ check: () async throws -> Value) async throws -> Value {
        do {
            return try await check()
        } catch let error as APIError where (400..<500).contains(error.status.code) {
            refusal.increment()
            throw error
        }
    }
}
