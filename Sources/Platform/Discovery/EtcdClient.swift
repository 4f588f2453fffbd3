import AsyncHTTPClient
import NIOSSL
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import Synchronization

/// What the registry needs of a key-value store with leases and watches: etcd's v3 API, spoken
/// here through etcd's JSON gateway (`/v3/...`), behind this small interface so that tests and
/// another store can stand in.
public protocol RegistryStore: Sendable {
    /// A lease of `ttl` seconds; keys put under it go when it expires or is revoked.
    func grantLease(ttl: Int) async throws -> Int64
    /// Renews the lease; answers the seconds it has left, 0 when it is gone.
    func keepAlive(lease: Int64) async throws -> Int
    func revoke(lease: Int64) async throws
    func put(key: String, value: String, lease: Int64?) async throws
    func delete(key: String) async throws
    /// Puts (a value) and deletes (nil) several keys in one revision: watchers see them together.
    func write(_ changes: [String: String?]) async throws
    /// Keys under `prefix`, with the store's revision when read.
    func range(prefix: String) async throws -> (entries: [RegistryEntry], revision: Int64)
    /// Changes under `prefix` after `revision`, until the stream fails or is cancelled.
    func watch(prefix: String, after revision: Int64) -> AsyncThrowingStream<[RegistryChange], any Error>
}

public struct RegistryEntry: Sendable, Equatable {
    public var key: String
    public var value: String
}

public enum RegistryChange: Sendable, Equatable {
    case put(RegistryEntry)
    case delete(key: String)
}

/// An etcd v3 cluster through its JSON gateway: several endpoints, tried in turn; optional user
/// and password (etcd's token auth); `https://` endpoints for TLS.
public final class EtcdClient: RegistryStore {
    private let endpoints: [String]
    private let credentials: (user: String, password: String)?
    private let http: HTTPClient
    private let tls: TLSConfiguration?
    private let token = Mutex<String?>(nil)
    /// The endpoint that answered last: tried first next time.
    private let preferred = Atomic<Int>(0)

    /// `tls` applies to `https://` endpoints: each request carries it, so the shared client's
    /// connections to etcd are pooled by it.
    public init(endpoints: [String], user: String? = nil, password: String? = nil, tls: TLSConfiguration? = nil, http: HTTPClient = .shared) {
        self.endpoints = endpoints.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.credentials = user.map { ($0, password ?? "") }
        self.tls = tls
        self.http = http
    }

    public func grantLease(ttl: Int) async throws -> Int64 {
        let answer = try await call("/v3/lease/grant", ["TTL": ttl])
        guard let id = Self.int64(answer["ID"]) else { throw EtcdError("lease grant answered no ID") }
        return id
    }

    public func keepAlive(lease: Int64) async throws -> Int {
        let answer = try await call("/v3/lease/keepalive", ["ID": String(lease)])
        let result = answer["result"] as? [String: Any] ?? answer
        return Int(Self.int64(result["TTL"]) ?? 0)
    }

    public func revoke(lease: Int64) async throws {
        _ = try await call("/v3/lease/revoke", ["ID": String(lease)])
    }

    public func put(key: String, value: String, lease: Int64?) async throws {
        var body: [String: Any] = ["key": Self.base64(key), "value": Self.base64(value)]
        if let lease { body["lease"] = String(lease) }
        _ = try await call("/v3/kv/put", body)
    }

    public func delete(key: String) async throws {
        _ = try await call("/v3/kv/deleterange", ["key": Self.base64(key)])
    }

    /// One transaction (`/v3/kv/txn`, no conditions).
    public func write(_ changes: [String: String?]) async throws {
        let operations: [[String: Any]] = changes.sorted { $0.key < $1.key }.map { key, value in
            if let value { return ["requestPut": ["key": Self.base64(key), "value": Self.base64(value)]] }
            return ["requestDeleteRange": ["key": Self.base64(key)]]
        }
        _ = try await call("/v3/kv/txn", ["success": operations])
    }

    public func range(prefix: String) async throws -> (entries: [RegistryEntry], revision: Int64) {
        let answer = try await call("/v3/kv/range", ["key": Self.base64(prefix), "range_end": Self.base64(Self.prefixEnd(prefix))])
        let revision = Self.int64((answer["header"] as? [String: Any])?["revision"]) ?? 0
        let entries = (answer["kvs"] as? [[String: Any]] ?? []).compactMap(Self.entry)
        return (entries, revision)
    }

    /// A watch with no change for AsyncHTTPClient's read timeout (90 s) is read again from the
    /// last revision it delivered, quietly: an idle registry is no outage.
    public func watch(prefix: String, after revision: Int64) -> AsyncThrowingStream<[RegistryChange], any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                var delivered = revision
                do {
                    while true {
                        // Only a watch etcd confirmed is resumed quietly: a member that takes the
                        // connection and never answers is an outage, reported as one.
                        var created = false
                        do {
                            try await self.watchOnce(prefix: prefix, after: delivered, created: { created = true }) { changes, revision in
                                delivered = max(delivered, revision)
                                if !changes.isEmpty { continuation.yield(changes) }
                            }
                            throw EtcdError("the watch ended")
                        } catch let error as HTTPClientError where error == .readTimeout && created {
                            continue
                        }
                    }
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// One watch request: `deliver` gets each response's changes and the revision up to which
    /// everything was sent.
    private func watchOnce(
        prefix: String, after revision: Int64, created: () -> Void, deliver: ([RegistryChange], Int64) -> Void
    ) async throws {
        let request = ["create_request": [
            "key": Self.base64(prefix), "range_end": Self.base64(Self.prefixEnd(prefix)),
            "start_revision": String(revision + 1), "progress_notify": true,
        ] as [String: Any]]
        try await stream("/v3/watch", request) { object in
            guard let result = object["result"] as? [String: Any] else {
                if let error = object["error"] as? [String: Any] { throw EtcdError("watch: \(error["message"] ?? error)") }
                return
            }
            if (result["canceled"] as? Bool) == true {
                let compacted = Self.int64(result["compact_revision"]).map { $0 > 0 } ?? false
                throw EtcdError("watch canceled: \(result["cancel_reason"] ?? "compacted")", compacted: compacted || result["cancel_reason"] == nil)
            }
            if (result["created"] as? Bool) == true { created() }
            let events = result["events"] as? [[String: Any]] ?? []
            if let last = events.last {
                deliver(events.compactMap(Self.change), Self.int64((last["kv"] as? [String: Any])?["mod_revision"]) ?? revision)
            } else if (result["created"] as? Bool) != true, let progress = Self.int64((result["header"] as? [String: Any])?["revision"]) {
                // A progress notification: every change up to its revision was sent. (The answer
                // that creates the watch carries the current revision, with events still to come.)
                deliver([], progress)
            }
        }
    }

    // MARK: - Calls

    /// One unary call, on the preferred endpoint first, then the others.
    private func call(_ path: String, _ body: [String: Any]) async throws -> [String: Any] {
        var lastError: any Error = EtcdError("no etcd endpoint configured")
        let start = preferred.load(ordering: .relaxed)
        for offset in 0..<endpoints.count {
            let index = (start + offset) % endpoints.count
            do {
                let answer = try await callOnce(endpoints[index], path, body, retryingAuth: true)
                preferred.store(index, ordering: .relaxed)
                return answer
            } catch let error as EtcdError where !error.isMemberTrouble {
                throw error
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    private func callOnce(_ endpoint: String, _ path: String, _ body: [String: Any], retryingAuth: Bool) async throws -> [String: Any] {
        let request = try await post(endpoint, path, body, authorized: true)
        let response = try await http.execute(request, timeout: .seconds(5))
        let bytes = try await response.body.collect(upTo: 16 << 20)
        let object = (try? JSONSerialization.jsonObject(with: Data(buffer: bytes))) as? [String: Any] ?? [:]
        guard response.status == .ok else {
            let message = object["message"] as? String ?? object["error"] as? String ?? "HTTP \(response.status.code)"
            if retryingAuth, credentials != nil, message.contains("token") {
                token.withLock { $0 = nil }
                return try await callOnce(endpoint, path, body, retryingAuth: false)
            }
            throw EtcdError(message, status: Int(response.status.code))
        }
        return object
    }

    /// A streaming call, on the preferred endpoint first, then the others: `handle` gets each
    /// JSON object of the answer as it arrives.
    private func stream(_ path: String, _ body: [String: Any], handle: ([String: Any]) throws -> Void) async throws {
        var lastError: any Error = EtcdError("no etcd endpoint configured")
        let start = preferred.load(ordering: .relaxed)
        for offset in 0..<endpoints.count {
            let index = (start + offset) % endpoints.count
            let response: HTTPClientResponse
            do {
                let request = try await post(endpoints[index], path, body, authorized: true)
                // A watch lasts; the watcher starts a new one when this one ends.
                response = try await http.execute(request, timeout: .hours(1))
            } catch {
                lastError = error
                continue
            }
            guard response.status == .ok else {
                let error = EtcdError("\(path): HTTP \(response.status.code)", status: Int(response.status.code))
                guard error.isMemberTrouble else { throw error }
                lastError = error
                continue
            }
            preferred.store(index, ordering: .relaxed)
            try await read(response.body, handle: handle)
            return
        }
        throw lastError
    }

    /// The gateway writes one JSON object per line.
    private func read(_ body: HTTPClientResponse.Body, handle: ([String: Any]) throws -> Void) async throws {
        var pending: [UInt8] = []
        for try await chunk in body {
            pending += chunk.readableBytesView
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(pending[..<newline])
                pending.removeSubrange(...newline)
                guard !line.isEmpty, let object = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any] else { continue }
                try handle(object)
            }
            if let object = (try? JSONSerialization.jsonObject(with: Data(pending))) as? [String: Any] {
                pending.removeAll()
                try handle(object)
            }
        }
    }

    /// A JSON POST to the gateway, with the auth token when `authorized` and there are credentials.
    private func post(_ endpoint: String, _ path: String, _ body: [String: Any], authorized: Bool) async throws -> HTTPClientRequest {
        var request = HTTPClientRequest(url: endpoint + path)
        request.tlsConfiguration = tls
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        // A member that has lost its leader ends a watch instead of keeping it open, stale
        // (etcd's require-leader metadata, through the gateway's metadata headers).
        if path == "/v3/watch" { request.headers.add(name: "grpc-metadata-hasleader", value: "true") }
        if authorized, let token = try await authToken(endpoint) { request.headers.add(name: "authorization", value: token) }
        request.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: body)))
        return request
    }

    private func authToken(_ endpoint: String) async throws -> String? {
        guard let credentials else { return nil }
        if let token = token.withLock({ $0 }) { return token }
        let request = try await post(endpoint, "/v3/auth/authenticate", ["name": credentials.user, "password": credentials.password], authorized: false)
        let response = try await http.execute(request, timeout: .seconds(5))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        let object = (try? JSONSerialization.jsonObject(with: Data(buffer: bytes))) as? [String: Any] ?? [:]
        guard response.status == .ok, let fresh = object["token"] as? String else {
            throw EtcdError("etcd refused the user \(credentials.user.quotedForMessage): \(object["message"] as? String ?? "HTTP \(response.status.code)")", status: Int(response.status.code))
        }
        token.withLock { $0 = fresh }
        return fresh
    }

    // MARK: - Encoding

    static func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

    static func text(_ base64: Any?) -> String? {
        guard let base64 = base64 as? String, let data = Data(base64Encoded: base64) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    /// The gateway writes 64-bit numbers as strings.
    static func int64(_ value: Any?) -> Int64? {
        if let text = value as? String { return Int64(text) }
        return (value as? NSNumber)?.int64Value
    }

    /// The first key after every key that starts with `prefix` (etcd's range end for a prefix).
    static func prefixEnd(_ prefix: String) -> String {
        var bytes = Array(prefix.utf8)
        while let last = bytes.last {
            if last < 0xFF {
                bytes[bytes.count - 1] = last + 1
                return String(decoding: bytes, as: UTF8.self)
            }
            bytes.removeLast()
        }
        return "\0"
    }

    private static func entry(_ kv: [String: Any]) -> RegistryEntry? {
        guard let key = text(kv["key"]) else { return nil }
        return RegistryEntry(key: key, value: text(kv["value"]) ?? "")
    }

    private static func change(_ event: [String: Any]) -> RegistryChange? {
        guard let kv = event["kv"] as? [String: Any], let key = text(kv["key"]) else { return nil }
        if (event["type"] as? String) == "DELETE" { return .delete(key: key) }
        return .put(RegistryEntry(key: key, value: text(kv["value"]) ?? ""))
    }
}

public struct EtcdError: Error, CustomStringConvertible {
    public let description: String
    /// The HTTP status etcd answered with; nil when it did not answer.
    let status: Int?
    /// A watch from a revision etcd has compacted away: read the whole prefix again.
    let compacted: Bool

    init(_ description: String, status: Int? = nil, compacted: Bool = false) {
        self.description = description
        self.status = status
        self.compacted = compacted
    }

    /// The trouble is the member's (no answer; 5xx: no leader, a request timed out, the member
    /// is stopping), not the request's: another member may answer it. A 4xx (a bad request,
    /// permission, authentication) any member would answer the same.
    var isMemberTrouble: Bool { status.map { $0 >= 500 } ?? true }
}
