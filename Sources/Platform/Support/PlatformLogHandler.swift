import Foundation
import Logging

/// How log lines are written: `text` for people, `json` (one object per line) for collectors.
public enum LogFormat: String, Sendable, CaseIterable {
    case text, json
}

/// The platform's log handler. Every line is one line whatever a request put into it: control
/// characters in messages and metadata are escaped (`\n`, `\u{1B}`), and in text lines a value
/// with spaces, quotes or `=` is quoted, so a client cannot forge a log line or a field.
public struct PlatformLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    /// The process's level (`LOG_LEVEL`, which the configuration center may change while the
    /// process runs) unless code set one on this logger.
    public var logLevel: Logger.Level {
        get { ownLevel ?? processLevel.level }
        set { ownLevel = newValue }
    }
    private var ownLevel: Logger.Level?
    private let processLevel: LiveLogLevel
    private let label: String
    private let format: LogFormat
    private let output: @Sendable (String) -> Void

    public init(
        label: String, level: LiveLogLevel, format: LogFormat, metadataProvider: Logger.MetadataProvider? = nil,
        output: @escaping @Sendable (String) -> Void = PlatformLogHandler.standardError
    ) {
        self.label = label
        self.processLevel = level
        self.format = format
        self.metadataProvider = metadataProvider
        self.output = output
    }

    public init(
        label: String, level: Logger.Level, format: LogFormat, metadataProvider: Logger.MetadataProvider? = nil,
        output: @escaping @Sendable (String) -> Void = PlatformLogHandler.standardError
    ) {
        self.init(label: label, level: LiveLogLevel(level), format: format, metadataProvider: metadataProvider, output: output)
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let time = Self.timestamp()
        switch format {
        case .text: output(textLine(time: time, event: event, metadata: merged))
        case .json: output(jsonLine(time: time, event: event, metadata: merged))
        }
    }

    func textLine(time: String, event: LogEvent, metadata: Logger.Metadata) -> String {
        var line = "\(time) \(event.level) \(label) :"
        for key in metadata.keys.sorted() {
            line += " \(Self.escaped(key))=\(Self.textValue(metadata[key].map(Self.flatten) ?? ""))"
        }
        line += " [\(Self.escaped(event.source))] \(Self.escaped(event.message.description))\n"
        return line
    }

    func jsonLine(time: String, event: LogEvent, metadata: Logger.Metadata) -> String {
        var object: [(String, String)] = [("time", time), ("level", event.level.rawValue), ("logger", label), ("message", event.message.description)]
        // Well-known fields by their usual names; the rest as they are.
        let renamed = ["app": "component", "request-id": "request_id", "user-id": "user_id", "trace-id": "trace_id", "span-id": "span_id"]
        for key in metadata.keys.sorted() {
            object.append((renamed[key] ?? key, metadata[key].map(Self.flatten) ?? ""))
        }
        object.append(("source", event.source))
        var bytes: [UInt8] = [UInt8(ascii: "{")]
        for (index, (key, value)) in object.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            Self.writeJSONString(key, into: &bytes)
            bytes.append(UInt8(ascii: ":"))
            Self.writeJSONString(value, into: &bytes)
        }
        bytes.append(contentsOf: Array("}\n".utf8))
        return String(decoding: bytes, as: UTF8.self)
    }

    public static func standardError(_ line: String) {
        FileHandle.standardError.write(Data(line.utf8))
    }

    static func flatten(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let text): text
        case .stringConvertible(let convertible): convertible.description
        case .array(let items): "[" + items.map(flatten).joined(separator: ", ") + "]"
        case .dictionary(let entries): "[" + entries.keys.sorted().map { "\($0): \(entries[$0].map(flatten) ?? "")" }.joined(separator: ", ") + "]"
        }
    }

    /// Control characters (and the backslash that escapes them) as escapes.
    static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F || $0 == "\\" || $0.properties.generalCategory == .control || $0 == "\u{2028}" || $0 == "\u{2029}" }) else {
            return text
        }
        var result = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default:
                if scalar.properties.generalCategory == .control || scalar == "\u{2028}" || scalar == "\u{2029}" {
                    result += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result
    }

    /// A metadata value as text: escaped, and quoted if it could be taken for more than one field.
    static func textValue(_ text: String) -> String {
        let escaped = escaped(text)
        guard escaped.isEmpty || escaped.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" }) else { return escaped }
        return "\"" + escaped.replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    static func writeJSONString(_ text: String, into bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": bytes.append(contentsOf: [0x5C, 0x22])
            case "\\": bytes.append(contentsOf: [0x5C, 0x5C])
            case "\n": bytes.append(contentsOf: [0x5C, 0x6E])
            case "\r": bytes.append(contentsOf: [0x5C, 0x72])
            case "\t": bytes.append(contentsOf: [0x5C, 0x74])
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F || scalar == "\u{2028}" || scalar == "\u{2029}" {
                    let hex = String(scalar.value, radix: 16)
                    bytes.append(contentsOf: Array(("\\u" + String(repeating: "0", count: 4 - hex.count) + hex).utf8))
                } else {
                    bytes.append(contentsOf: Array(String(scalar).utf8))
                }
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// ISO 8601 in UTC with milliseconds.
    static func timestamp(_ date: Date = Date()) -> String {
        var time = time_t(date.timeIntervalSince1970)
        var parts = tm()
        gmtime_r(&time, &parts)
        let millis = Int((date.timeIntervalSince1970 - Double(time)) * 1000)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(millis), 3))Z"
    }
}
