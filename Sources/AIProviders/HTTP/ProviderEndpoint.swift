import Foundation

/// A provider's base URL taken apart once: where to connect, the `Host` header, and the request
/// target of each path (the base URL's path, then the path, then the configured query).
struct ProviderEndpoint: Sendable, Equatable {
    let origin: ProviderOrigin
    let hostHeader: String
    private let basePath: String
    private let query: String

    /// Nil unless `baseURL` is an http or https URL with a host.
    init?(baseURL: String, queryItems: [ProviderQueryItem]) {
        guard let components = URLComponents(string: baseURL), let scheme = components.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty else { return nil }
        let isTLS = scheme == "https"
        let port = components.port ?? (isTLS ? 443 : 80)
        // An IPv6 address: connect to it bare, name it in brackets in the Host header.
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let hostForHeader = bare.contains(":") ? "[\(bare)]" : bare
        origin = ProviderOrigin(isTLS: isTLS, host: bare, port: port)
        hostHeader = components.port == nil ? hostForHeader : "\(hostForHeader):\(port)"
        let path = components.percentEncodedPath
        basePath = path.hasSuffix("/") ? String(path.dropLast()) : path
        if queryItems.isEmpty {
            query = ""
        } else {
            var allowed = CharacterSet.urlQueryAllowed
            allowed.remove(charactersIn: "&=+#")
            query = "?" + queryItems.map { item in
                (item.name.addingPercentEncoding(withAllowedCharacters: allowed) ?? item.name) + "="
                    + (item.value.addingPercentEncoding(withAllowedCharacters: allowed) ?? item.value)
            }.joined(separator: "&")
        }
    }

    /// `/v1/chat/completions?api-version=…` for `chat/completions`.
    func target(_ path: String) -> String {
        basePath + "/" + path + query
    }
}
