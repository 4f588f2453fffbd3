import Foundation

/// A `host:port` pair as written in configuration (`127.0.0.1:9101`, `users.internal:9101`,
/// `[::1]:9101`).
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init?(parsing text: String) {
        let text = text.trimmingCharacters(in: .whitespaces)
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return nil }
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else { return nil }
        self.init(host: String(host), port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Parses a comma-separated list, reporting unusable items to `settings`.
    public static func list(_ key: String, from settings: SettingsReader) -> [HostPort] {
        settings.list(key).compactMap { item in
            guard let parsed = HostPort(parsing: item) else {
                settings.report("\(key.replacingOccurrences(of: ".", with: "_").uppercased()): '\(item)' is not host:port")
                return nil
            }
            return parsed
        }
    }
}

