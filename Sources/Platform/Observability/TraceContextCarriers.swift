import GRPCCore
import HTTPTypes
import Instrumentation
import Tracing

/// W3C trace context (`traceparent`, `tracestate`) in gRPC metadata, for calls between services.
public struct MetadataInjector: Injector {
    public init() {}

    public func inject(_ value: String, forKey key: String, into carrier: inout Metadata) {
        carrier.replaceOrAddString(value, forKey: key)
    }
}

public struct MetadataExtractor: Extractor {
    public init() {}

    public func extract(key: String, from carrier: Metadata) -> String? {
        carrier[stringValues: key].first(where: { _ in true })
    }
}

/// W3C trace context in HTTP fields: a client's request, our responses.
public struct HTTPFieldsInjector: Injector {
    public init() {}

    public func inject(_ value: String, forKey key: String, into carrier: inout HTTPFields) {
        guard let name = HTTPField.Name(key) else { return }
        carrier[name] = value
    }
}

public struct HTTPFieldsExtractor: Extractor {
    public init() {}

    public func extract(key: String, from carrier: HTTPFields) -> String? {
        guard let name = HTTPField.Name(key) else { return nil }
        return carrier[name]
    }
}

extension Tracer {
    /// The context a carrier's trace headers describe, under `base` (the current context).
    public func extracting<Carrier, Extract: Extractor>(from carrier: Carrier, using extractor: Extract) -> InstrumentationContext
    where Extract.Carrier == Carrier {
        var context = InstrumentationContext.topLevel
        extract(carrier, into: &context, using: extractor)
        return context
    }
}
