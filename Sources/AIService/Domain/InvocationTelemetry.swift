import CoreMetrics
import Platform
import Tracing

/// How invocations are seen. Metrics: `aisaas_ai_requests_total{provider, model, kind, outcome}`,
/// `aisaas_ai_tokens_total{provider, model, type}`, `aisaas_ai_cost_total{provider, model}`,
/// `aisaas_ai_refusals_total{reason}`, and OpenTelemetry's GenAI histograms
/// `gen_ai_client_operation_duration_seconds` and `gen_ai_server_time_to_first_token_seconds`.
/// Traces: each admitted call is a GenAI client span (`chat gpt-4o`) whose context goes to the
/// provider in `traceparent`. Providers and models come from configuration, but a client may
/// name a model: their label values are bounded.
final class InvocationTelemetry: Sendable {
    let telemetry: Telemetry
    private let providers = BoundedLabelValues(limit: 64)
    private let models = BoundedLabelValues(limit: 256)
    private let calls: MetricHandles<CallKey, CallHandles>
    private let firstTokens: MetricHandles<ModelKey, CoreMetrics.Timer>
    private let refusals: MetricHandles<String, Counter>

    init(telemetry: Telemetry) {
        self.telemetry = telemetry
        let factory = telemetry.metrics
        calls = MetricHandles { CallHandles(key: $0, factory: factory) }
        firstTokens = MetricHandles { key in
            CoreMetrics.Timer(label: "gen_ai_server_time_to_first_token_seconds", dimensions: key.genAIDimensions, factory: factory)
        }
        refusals = MetricHandles { Counter(label: "aisaas_ai_refusals_total", dimensions: [("reason", $0)], factory: factory) }
    }

    static let disabled = InvocationTelemetry(telemetry: .disabled(component: aiServiceApplication))

    /// What happened to an invocation, as the `outcome` label says it.
    enum Outcome: String {
        case ok, cancelled
        /// Rate limit or quota.
        case refused
        /// Refused before admission: bad input, unknown model, no provider.
        case rejected
        /// The provider failed the admitted call (5xx, timeout, rate limit, refused credentials).
        case providerError = "provider_error"
        /// The provider turned the admitted call down as invalid (4xx for its input): the
        /// client's request, not the provider's health.
        case providerRejected = "provider_rejected"
        /// Anything else after admission (the database, a bug).
        case error
    }

    /// The span of an admitted call, ended by `finished`; nil when tracing is off.
    func startCall(_ target: InvocationTarget) -> (any Span)? {
        guard telemetry.isTracing else { return nil }
        let operation = Self.operationName(target.kind)
        let span = telemetry.tracer.startSpan("\(operation) \(target.model)", ofKind: .client)
        span.attributes["gen_ai.operation.name"] = operation
        span.attributes["gen_ai.provider.name"] = target.provider
        span.attributes["gen_ai.system"] = target.provider
        span.attributes["gen_ai.request.model"] = target.model
        if !target.chatModelId.isEmpty { span.attributes["aisaas.chat_model.id"] = target.chatModelId }
        return span
    }

    func firstToken(_ admission: Admission) {
        firstTokens[modelKey(admission.target)].recordSince(admission.providerStarted)
    }

    func finished(_ admission: Admission, consumed: Consumption, cost: Double, error: (any Error)?, cancelled: Bool) {
        let outcome = Self.outcome(error: error, cancelled: cancelled, admitted: admission.admitted)
        let handles = calls[CallKey(model: modelKey(admission.target), kind: Self.kindLabel(admission.target), outcome: outcome.rawValue)]
        handles.requests.increment()
        if consumed.promptTokens > 0 { handles.inputTokens.increment(by: consumed.promptTokens) }
        if consumed.completionTokens > 0 { handles.outputTokens.increment(by: consumed.completionTokens) }
        if cost > 0 { handles.cost.increment(by: cost) }
        if admission.admitted { handles.duration.recordSince(admission.providerStarted) }
        switch outcome {
        case .refused:
            let reason = (error as? DomainError)?.reason == ErrorReason.rateLimited.rawValue ? "rate_limit" : "quota"
            refusals[reason].increment()
        case .providerError:
            refusals["provider_failure"].increment()
        default:
            break
        }
        if let span = admission.span {
            span.attributes["gen_ai.usage.input_tokens"] = consumed.promptTokens
            span.attributes["gen_ai.usage.output_tokens"] = consumed.completionTokens
            if cost > 0 { span.attributes["aisaas.cost"] = cost }
            if outcome != .ok {
                span.attributes["error.type"] = outcome.rawValue
                span.setStatus(SpanStatus(code: .error, message: error.map(InvocationPipeline.describe)))
            }
            span.end()
        }
    }

    static func outcome(error: (any Error)?, cancelled: Bool, admitted: Bool) -> Outcome {
        if cancelled { return .cancelled }
        guard let error else { return .ok }
        if error is CancellationError { return .cancelled }
        let reason = (error as? DomainError)?.reason
        if [ErrorReason.rateLimited, .quotaExceeded, .quotaBusy].contains(where: { $0.rawValue == reason }) { return .refused }
        guard admitted else { return .rejected }
        if reason == ErrorReason.providerRejectedRequest.rawValue { return .providerRejected }
        if [ErrorReason.providerRateLimited, .providerRejectedCredentials].contains(where: { $0.rawValue == reason }) {
            return .providerError
        }
        // After admission, an upstream failure or a deadline is the provider's.
        if let domain = error as? DomainError, [.upstreamFailure, .deadlineExceeded].contains(domain.kind) { return .providerError }
        return .error
    }

    /// OpenTelemetry's GenAI operation names where they exist (`chat`, `embeddings`).
    static func operationName(_ kind: InvocationKind) -> String {
        switch kind {
        case .chat: "chat"
        case .embeddings: "embeddings"
        case .stt: "transcription"
        case .tts: "speech"
        }
    }

    static func kindLabel(_ target: InvocationTarget) -> String {
        target.kind == .chat && target.streamed ? "stream" : target.kind.rawValue
    }

    private func modelKey(_ target: InvocationTarget) -> ModelKey {
        ModelKey(provider: providers.value(target.provider), model: models.value(target.model), operation: Self.operationName(target.kind))
    }
}

struct ModelKey: Hashable, Sendable {
    var provider: String
    var model: String
    var operation: String

    var genAIDimensions: [(String, String)] {
        [("gen_ai_operation_name", operation), ("gen_ai_provider_name", provider), ("gen_ai_request_model", model)]
    }
}

struct CallKey: Hashable, Sendable {
    var model: ModelKey
    var kind: String
    var outcome: String
}

struct CallHandles: Sendable {
    let requests: Counter
    let inputTokens: Counter
    let outputTokens: Counter
    let cost: FloatingPointCounter
    let duration: CoreMetrics.Timer

    init(key: CallKey, factory: any MetricsFactory) {
        let model = [("provider", key.model.provider), ("model", key.model.model)]
        requests = Counter(label: "aisaas_ai_requests_total", dimensions: model + [("kind", key.kind), ("outcome", key.outcome)], factory: factory)
        inputTokens = Counter(label: "aisaas_ai_tokens_total", dimensions: model + [("type", "input")], factory: factory)
        outputTokens = Counter(label: "aisaas_ai_tokens_total", dimensions: model + [("type", "output")], factory: factory)
        cost = FloatingPointCounter(label: "aisaas_ai_cost_total", dimensions: model, factory: factory)
        let errorType = key.outcome == "ok" ? "none" : key.outcome
        duration = CoreMetrics.Timer(
            label: "gen_ai_client_operation_duration_seconds", dimensions: key.model.genAIDimensions + [("error_type", errorType)], factory: factory
        )
    }
}
