import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// An OTLP/HTTP trace receiver on loopback (`POST /v1/traces`, `application/x-protobuf`), or an
/// OTLP/gRPC one (`startGRPC`), the part of an OpenTelemetry Collector the tests need. It decodes the spans of
/// `ExportTraceServiceRequest` with a small protobuf reader (field numbers of opentelemetry-proto's
/// trace.proto) and keeps them.
public final class OTLPTraceReceiver: Sendable {
    public struct ReceivedSpan: Sendable, CustomStringConvertible {
        public var serviceName = ""
        /// The attributes of the resource the span came with (`service.name` among them).
        public var resource: [String: String] = [:]
        public var traceID = ""
        public var spanID = ""
        /// nil for a root span.
        public var parentSpanID: String?
        public var name = ""
        /// 1 internal, 2 server, 3 client.
        public var kind = 0
        public var attributes: [String: String] = [:]
        /// 0 unset, 1 ok, 2 error.
        public var statusCode = 0

        public var description: String { "\(serviceName): \(name) [\(spanID) ← \(parentSpanID ?? "root")]" }
    }

    public let endpoint: String
    let received = Mutex<[ReceivedSpan]>([])
    let server = Mutex<Task<Void, Never>?>(nil)

    init(port: Int) {
        endpoint = "http://127.0.0.1:\(port)"
    }

    public var spans: [ReceivedSpan] { received.withLock { $0 } }

    public static func start() async throws -> OTLPTraceReceiver {
        var quiet = Logger(label: "otlp-receiver")
        quiet.logLevel = .critical
        let box = Mutex<OTLPTraceReceiver?>(nil)
        let router = Router()
        router.post("/v1/traces") { request, _ -> Response in
            var request = request
            let body = try await request.collectBody(upTo: 16 << 20)
            guard let receiver = box.withLock({ $0 }) else { return Response(status: .serviceUnavailable) }
            guard let spans = try? Self.decode(Array(body.readableBytesView)) else { return Response(status: .badRequest) }
            receiver.received.withLock { $0.append(contentsOf: spans) }
            return Response(status: .ok, headers: [.contentType: "application/x-protobuf"], body: .init())
        }
        let running: RunningServer
        do {
            running = try await RunningServer.start { onServerRunning in
                Application(
                    router: router, configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0), serverName: nil),
                    onServerRunning: onServerRunning, logger: quiet
                )
            }
        } catch {
            throw OTLPReceiverError("the OTLP receiver did not start")
        }
        let receiver = OTLPTraceReceiver(port: running.port)
        box.withLock { $0 = receiver }
        receiver.server.withLock { $0 = running.task }
        return receiver
    }

    public func stop() async {
        let task = server.withLock { $0 }
        task?.cancel()
        await task?.value
    }

    /// Waits until `condition` holds for the spans received so far.
    public func waitForSpans(
        timeout: Duration = .seconds(30), _ condition: ([ReceivedSpan]) -> Bool
    ) async throws -> [ReceivedSpan] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let spans = self.spans
            if condition(spans) { return spans }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw OTLPReceiverError("spans did not arrive; received: \(spans.map(\.description).joined(separator: "; "))")
    }

    // MARK: - Protobuf

    /// ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1 }
    static func decode(_ bytes: [UInt8]) throws -> [ReceivedSpan] {
        var spans: [ReceivedSpan] = []
        for (field, value) in try ProtobufFields(bytes) where field == 1 {
            guard case .bytes(let resourceSpans) = value else { continue }
            var resource: [String: String] = [:]
            var scopeSpans: [[UInt8]] = []
            // ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2 }
            for (field, value) in try ProtobufFields(resourceSpans) {
                guard case .bytes(let inner) = value else { continue }
                if field == 1 {
                    // Resource { repeated KeyValue attributes = 1 }
                    for (field, value) in try ProtobufFields(inner) where field == 1 {
                        if case .bytes(let pair) = value, let (key, text) = try keyValue(pair) { resource[key] = text }
                    }
                } else if field == 2 {
                    scopeSpans.append(inner)
                }
            }
            for scope in scopeSpans {
                // ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2 }
                for (field, value) in try ProtobufFields(scope) where field == 2 {
                    guard case .bytes(let spanBytes) = value else { continue }
                    var span = try decodeSpan(spanBytes)
                    span.serviceName = resource["service.name"] ?? ""
                    span.resource = resource
                    spans.append(span)
                }
            }
        }
        return spans
    }

    /// Span { trace_id = 1; span_id = 2; parent_span_id = 4; name = 5; kind = 6; attributes = 9; status = 15 }
    static func decodeSpan(_ bytes: [UInt8]) throws -> ReceivedSpan {
        var span = ReceivedSpan()
        for (field, value) in try ProtobufFields(bytes) {
            switch (field, value) {
            case (1, .bytes(let id)): span.traceID = hex(id)
            case (2, .bytes(let id)): span.spanID = hex(id)
            case (4, .bytes(let id)): span.parentSpanID = id.isEmpty ? nil : hex(id)
            case (5, .bytes(let name)): span.name = String(decoding: name, as: UTF8.self)
            case (6, .varint(let kind)): span.kind = Int(kind)
            case (9, .bytes(let pair)):
                if let (key, text) = try keyValue(pair) { span.attributes[key] = text }
            case (15, .bytes(let status)):
                for (field, value) in try ProtobufFields(status) where field == 3 {
                    if case .varint(let code) = value { span.statusCode = Int(code) }
                }
            default: break
            }
        }
        return span
    }

    /// KeyValue { string key = 1; AnyValue value = 2 }, AnyValue { string = 1; bool = 2; int = 3; double = 4 }.
    static func keyValue(_ bytes: [UInt8]) throws -> (String, String)? {
        var key: String?
        var text = ""
        for (field, value) in try ProtobufFields(bytes) {
            if field == 1, case .bytes(let name) = value { key = String(decoding: name, as: UTF8.self) }
            guard field == 2, case .bytes(let any) = value else { continue }
            for (kind, inner) in try ProtobufFields(any) {
                switch (kind, inner) {
                case (1, .bytes(let string)): text = String(decoding: string, as: UTF8.self)
                case (2, .varint(let flag)): text = flag != 0 ? "true" : "false"
                case (3, .varint(let number)): text = String(Int64(bitPattern: number))
                case (4, .fixed64(let bits)): text = String(Double(bitPattern: bits))
                default: break
                }
            }
        }
        return key.map { ($0, text) }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }
}

enum ProtobufValue {
    case varint(UInt64)
    case fixed64(UInt64)
    case bytes([UInt8])
    case fixed32(UInt32)
}

/// The fields of one protobuf message, in order; a malformed message throws.
struct ProtobufFields: Sequence {
    private var fields: [(Int, ProtobufValue)] = []

    init(_ bytes: [UInt8]) throws {
        var index = 0
        func varint() throws -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard index < bytes.count, shift < 64 else { throw OTLPReceiverError("truncated varint") }
                let byte = bytes[index]
                index += 1
                result |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return result }
                shift += 7
            }
        }
        func take(_ count: Int) throws -> [UInt8] {
            guard count >= 0, index + count <= bytes.count else { throw OTLPReceiverError("truncated field") }
            defer { index += count }
            return Array(bytes[index..<index + count])
        }
        while index < bytes.count {
            let tag = try varint()
            let field = Int(tag >> 3)
            switch tag & 7 {
            case 0: fields.append((field, .varint(try varint())))
            case 1: fields.append((field, .fixed64(try take(8).reversed().reduce(0) { $0 << 8 | UInt64($1) })))
            case 2: fields.append((field, .bytes(try take(Int(try varint())))))
            case 5: fields.append((field, .fixed32(try take(4).reversed().reduce(0) { $0 << 8 | UInt32($1) })))
            default: throw OTLPReceiverError("unsupported wire type \(tag & 7)")
            }
        }
    }

    func makeIterator() -> IndexingIterator<[(Int, ProtobufValue)]> {
        fields.makeIterator()
    }
}

public struct OTLPReceiverError: Error, CustomStringConvertible {
    public let description: String

    init(_ description: String) {
        self.description = description
    }
}
