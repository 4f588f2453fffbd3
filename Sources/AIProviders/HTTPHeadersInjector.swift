import Instrumentation
import NIOHTTP1

/// Puts trace headers (`traceparent`, `tracestate`) on an outgoing async-http-client request.
struct HTTPHeadersInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout HTTPHeaders) {
        carrier.replaceOrAdd(name: key, value: value)
    }
}
