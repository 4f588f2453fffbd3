/// One Server-Sent Event: its `event` name (nil for the default) and its data lines joined by `\n`.
public struct ServerSentEvent: Sendable, Equatable {
    public var event: String?
    public var data: String

    public init(event: String? = nil, data: String) {
        self.event = event
        self.data = data
    }
}

/// Incremental Server-Sent Events parser (WHATWG rules): network chunks may end anywhere, even
/// inside a `\r\n` pair or a UTF-8 sequence, so bytes are kept until a line is complete.
public struct ServerSentEventParser: Sendable {
    public struct EventTooLarge: Error {}

    private var line: [UInt8] = []
    private var dataLines: [String] = []
    private var dataBytes = 0
    private var eventName: String?
    /// A `\r` ended the previous chunk: a `\n` opening the next one belongs to it.
    private var skipLeadingLineFeed = false
    public let maxEventBytes: Int

    public init(maxEventBytes: Int = 10 * 1024 * 1024) {
        self.maxEventBytes = maxEventBytes
    }

    public mutating func feed(_ bytes: some Sequence<UInt8>) throws -> [ServerSentEvent] {
        var events: [ServerSentEvent] = []
        for byte in bytes {
            if skipLeadingLineFeed {
                skipLeadingLineFeed = false
                if byte == UInt8(ascii: "\n") { continue }
            }
            switch byte {
            case UInt8(ascii: "\r"):
                skipLeadingLineFeed = true
                if let event = endLine() { events.append(event) }
            case UInt8(ascii: "\n"):
                if let event = endLine() { events.append(event) }
            default:
                line.append(byte)
                if line.count + dataBytes > maxEventBytes { throw EventTooLarge() }
            }
        }
        return events
    }

    /// The stream ended: an event missing its closing blank line is still delivered.
    public mutating func finish() -> ServerSentEvent? {
        let pending = line.isEmpty ? nil : endLine()
        return pending ?? dispatch()
    }

    private mutating func endLine() -> ServerSentEvent? {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty { return dispatch() }
        if line.first == UInt8(ascii: ":") { return nil }

        let field: String
        let value: String
        if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
            field = String(decoding: line[..<colon], as: UTF8.self)
            var valueStart = colon + 1
            if valueStart < line.endIndex, line[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
            value = String(decoding: line[valueStart...], as: UTF8.self)
        } else {
            field = String(decoding: line, as: UTF8.self)
            value = ""
        }
        switch field {
        case "data":
            dataLines.append(value)
            dataBytes += value.utf8.count + 1
        case "event":
            eventName = value
        default:
            // `id` and `retry` matter for browser reconnection only.
            break
        }
        return nil
    }

    private mutating func dispatch() -> ServerSentEvent? {
        defer {
            dataLines.removeAll()
            dataBytes = 0
            eventName = nil
        }
        guard !dataLines.isEmpty else { return nil }
        return ServerSentEvent(event: eventName, data: dataLines.joined(separator: "\n"))
    }
}
