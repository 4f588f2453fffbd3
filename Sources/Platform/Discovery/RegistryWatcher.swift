import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// One service instance as the registry has it, under `<prefix>/services/<service>/<id>`.
public struct RegisteredInstance: Sendable, Equatable, Codable {
    public enum State: String, Sendable, Codable {
        case serving
        /// About to stop: callers stop choosing it, calls in flight finish.
        case draining
    }

    public var service: String
    public var id: String
    public var address: String
    public var state: State
    public var started: Date?

    public init(service: String, id: String, address: String, state: State, started: Date? = nil) {
        self.service = service
        self.id = id
        self.address = address
        self.state = state
        self.started = started
    }

    /// The value stored at the instance's key.
    struct Record: Codable {
        var address: String
        var state: State
        var started: Date?
    }

    static func key(prefix: String, service: String, id: String) -> String {
        "\(prefix)/services/\(service)/\(id)"
    }

    public init?(key: String, value: String, prefix: String) {
        let path = key.dropFirst(prefix.count + "/services/".count).split(separator: "/", maxSplits: 1)
        guard key.hasPrefix(prefix + "/services/"), path.count == 2,
              let record = try? Self.decoder.decode(Record.self, from: Data(value.utf8)) else { return nil }
        self.init(service: String(path[0]), id: String(path[1]), address: record.address, state: record.state, started: record.started)
    }

    var value: String {
        let data = (try? Self.encoder.encode(Record(address: address, state: state, started: started))) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = .sortedKeys
        return encoder
    }()

    private static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()
}

/// Whether the registry answers, as `/health` and the metrics report it.
public struct RegistryStatus: Sendable, Equatable {
    public var reachable: Bool
    /// What went wrong last, while unreachable.
    public var detail: String
    public var instances: Int
}

/// Every instance registered under a prefix, kept current by one watch: a read of the whole
/// prefix, then its changes from that revision on. While the registry cannot be reached the last
/// known set stays in use, and the watcher reads and watches again, backing off, until it can.
public final class RegistryWatcher: Service, Sendable {
    private struct State {
        var instances: [String: RegisteredInstance] = [:]  // by key
        var status = RegistryStatus(reachable: false, detail: "not read yet", instances: 0)
        var readOnce = false
    }

    public let prefix: String
    private let store: any RegistryStore
    private let logger: Logger
    private let state = Mutex(State())
    private let changed = ChangeSignal()

    public init(store: any RegistryStore, prefix: String, logger: Logger) {
        self.store = store
        self.prefix = prefix
        self.logger = logger
    }

    public var status: RegistryStatus { state.withLock { $0.status } }

    /// Whether the registry has been read at least once: before that, no instance listed means
    /// nothing yet, not that none is registered.
    public var hasRead: Bool { state.withLock { $0.readOnce } }

    /// The instances of `service` that take calls (draining ones left out).
    public func serving(_ service: String) -> [RegisteredInstance] {
        state.withLock { state in
            state.instances.values.filter { $0.service == service && $0.state == .serving }.sorted { $0.id < $1.id }
        }
    }

    public var all: [RegisteredInstance] {
        state.withLock { state in state.instances.values.sorted { ($0.service, $0.id) < ($1.service, $1.id) } }
    }

    /// A signal after every change of the set (and once at once).
    public func changes() -> AsyncStream<Void> {
        changed.stream(signalNow: true)
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.follow() }
        changed.finish()
    }

    private func follow() async {
        var backoff = Duration.milliseconds(200)
        while !Task.isCancelled {
            do {
                let (entries, revision) = try await store.range(prefix: prefix + "/services/")
                replace(with: entries)
                backoff = .milliseconds(200)
                for try await changes in store.watch(prefix: prefix + "/services/", after: revision) {
                    apply(changes)
                }
            } catch let error as EtcdError where error.compacted {
                // The watch fell behind etcd's history: read the whole prefix again, at once.
                logger.info("registry watch compacted; reading it again", metadata: ["error": "\(error)"])
                continue
            } catch {
                if Task.isCancelled { return }
                let wasReachable = markUnreachable(error)
                if wasReachable {
                    logger.warning("registry unreachable; keeping the last known instances", metadata: ["error": "\(error)"])
                }
            }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(5))
        }
    }

    private func replace(with entries: [RegistryEntry]) {
        var instances: [String: RegisteredInstance] = [:]
        for entry in entries {
            if let instance = RegisteredInstance(key: entry.key, value: entry.value, prefix: prefix) { instances[entry.key] = instance }
        }
        let recovered = update { state in
            let recovered = !state.status.reachable
            state.instances = instances
            state.status = RegistryStatus(reachable: true, detail: "", instances: instances.count)
            state.readOnce = true
            return recovered
        }
        if recovered { logger.info("registry read", metadata: ["instances": "\(instances.count)"]) }
    }

    private func apply(_ changes: [RegistryChange]) {
        update { state in
            for change in changes {
                switch change {
                case .put(let entry):
                    state.instances[entry.key] = RegisteredInstance(key: entry.key, value: entry.value, prefix: prefix)
                case .delete(let key):
                    state.instances[key] = nil
                }
            }
            state.status.instances = state.instances.count
        }
    }

    private func markUnreachable(_ error: any Error) -> Bool {
        update { state in
            let was = state.status.reachable
            state.status.reachable = false
            state.status.detail = "\(error)"
            return was
        }
    }

    /// Changes the state and tells the listeners.
    private func update<T>(_ body: (inout State) -> T) -> T {
        let result = state.withLock { state in body(&state) }
        changed.signal()
        return result
    }
}
