import Configuration
import CoreMetrics
import Crypto
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Applies dynamic settings while the process runs. Each component registers a *section*: a
/// function that reads its settings from one snapshot of every source and returns how to put them
/// in place. On every change of a source (the config file, etcd's `<prefix>/config/` keys) all
/// sections read the new snapshot; if any finds a problem the whole change is refused (the running
/// settings stay, the log and `status` say why), otherwise all are put in place together.
///
/// A version is named by the `config.version` setting when there is one (say, the ConfigMap's
/// revision), otherwise by a hash of the values the sections read.
///
/// Precedence is the loader's: environment > `.env` > secrets > etcd > file > defaults. Static
/// settings (addresses, database URLs, secrets) are read from the same sources when the process
/// starts; changing them later asks for a restart.
public final class ConfigurationCenter: Service, Sendable {
    /// One version of the settings, applied or refused.
    public struct Outcome: Sendable, Equatable, Codable {
        public var version: String
        /// When, ISO 8601.
        public var at: String
        public var problems: [String]
    }

    public struct Status: Sendable, Equatable, Codable {
        public var applied: Outcome?
        public var refused: Outcome?
    }

    /// Reads a section's settings and answers how to apply them; throws `ConfigurationError`.
    public typealias Section = @Sendable (SettingsReader) throws -> (@Sendable () -> Void)

    private struct State {
        var sections: [(name: String, read: Section)] = []
        var etcdValues: [String: String] = [:]
        var etcdReachable = false
        var status = Status()
        /// Fingerprint of the values behind the last applied or refused pass, to skip no-ops.
        var lastSeen: String?
    }

    public let configuration: PlatformConfiguration
    private let etcd: (store: any RegistryStore, prefix: String)?
    private let logger: Logger
    private let state = Mutex(State())
    private let changed = ChangeSignal()
    private let metrics: ConfigurationMetrics

    /// `etcd`: the store and prefix whose `<prefix>/config/` keys are a source (`DISCOVERY=etcd`).
    public init(
        configuration: PlatformConfiguration, etcd: (store: any RegistryStore, prefix: String)? = nil,
        metrics: any MetricsFactory = NOOPMetricsHandler.instance, logger: Logger
    ) {
        self.configuration = configuration
        self.etcd = etcd
        self.logger = logger
        self.metrics = ConfigurationMetrics(factory: metrics)
    }

    /// The etcd keys of a setting: `<prefix>/config/<key>`, the key as the README spells it in
    /// lower case with dots (`ai.rate.limit.per.minute`).
    public static func etcdKey(prefix: String, key: String) -> String { prefix + "/config/" + key }

    /// Reads etcd's keys once, so the process starts with the fleet's settings. An unreachable
    /// etcd is logged and the other sources are used; the watch catches up once it answers.
    public func loadInitial(timeout: Duration = .seconds(3)) async {
        guard let etcd else { return }
        do {
            let (entries, _) = try await withTimeLimit(timeout) { try await etcd.store.range(prefix: etcd.prefix + "/config/") }
            state.withLock { state in
                state.etcdValues = Self.values(entries, prefix: etcd.prefix)
                state.etcdReachable = true
            }
        } catch {
            logger.warning("etcd settings unavailable at start; using the other sources until it answers", metadata: ["error": "\(error)"])
        }
    }

    /// Every source as it is now, etcd's keys included: what a process reads its settings from.
    public var reader: ConfigReader {
        configuration.reader(etcd: etcdLayer())
    }

    /// Every source with etcd's keys changed as `changes` says (nil deletes): what a change
    /// would make, checked before it is written.
    public func reader(etcdChanges changes: [String: String?]) -> ConfigReader {
        configuration.reader(etcd: etcdLayer(changes))
    }

    /// etcd's keys as last read (`<prefix>/config/` stripped).
    public var etcdValues: [String: String] { state.withLock { $0.etcdValues } }

    private func etcdLayer(_ changes: [String: String?] = [:]) -> (any ConfigProvider)? {
        guard etcd != nil else { return nil }
        var values = state.withLock { $0.etcdValues }
        for (key, value) in changes { values[key] = value }
        var content: [AbsoluteConfigKey: ConfigValue] = [:]
        for (key, value) in values {
            content[AbsoluteConfigKey(key.split(separator: ".").map(String.init))] = ConfigValue(.string(value), isSecret: false)
        }
        return InMemoryProvider(name: "etcd", values: content)
    }

    /// Registers a section and applies it to the current settings at once: a problem there is a
    /// configuration error at start.
    public func register(_ name: String, _ section: @escaping Section) throws {
        let settings = SettingsReader(reader)
        let apply = try section(settings)
        apply()
        state.withLock { $0.sections.append((name, section)) }
    }

    public var status: Status { state.withLock { $0.status } }

    /// A signal after each applied or refused change.
    public func changes() -> AsyncStream<Void> { changed.stream(signalNow: false) }

    public func run() async throws {
        let file = configuration.file
        let pending = ChangeSignal()
        await withTaskGroup(of: Void.self) { group in
            if let file {
                group.addTask { try? await file.watcher.run() }
                group.addTask { try? await file.follow { pending.signal() } }
                group.addTask { await self.reportUnparsable(file) }
            }
            if etcd != nil {
                group.addTask { await self.followEtcd { pending.signal() } }
            }
            group.addTask {
                await cancelWhenGracefulShutdown {
                    for await _ in pending.stream(signalNow: true) {
                        self.reapply()
                    }
                }
            }
            // The sources and the loop end together when the process stops.
            await withGracefulShutdownHandler {
                await group.next()
            } onGracefulShutdown: {
                pending.finish()
            }
            group.cancelAll()
        }
        changed.finish()
    }

    /// Reads every section from one snapshot; applies all or none.
    func reapply() {
        let settings = SettingsReader(reader)
        let sections = state.withLock { $0.sections }
        var applies: [@Sendable () -> Void] = []
        var problems: [String] = []
        for section in sections {
            do {
                applies.append(try section.read(settings))
            } catch let error as ConfigurationError {
                problems += error.problems
            } catch {
                problems.append("\(section.name): \(error)")
            }
        }
        problems += settings.problemsSoFar.filter { !problems.contains($0) }
        let fingerprint = Self.fingerprint(settings.valuesRead)
        let version = settings.string("config.version") ?? fingerprint
        let isNew = state.withLock { state in
            defer { state.lastSeen = fingerprint }
            return state.lastSeen != fingerprint
        }
        guard isNew else {
            logger.debug("settings unchanged", metadata: ["config-version": "\(version)"])
            return
        }
        if problems.isEmpty {
            for apply in applies { apply() }
            state.withLock { $0.status.applied = Outcome(version: version, at: Date().formatted(.iso8601), problems: []) }
            metrics.applied(version: version)
            logger.notice("settings applied", metadata: ["config-version": "\(version)"])
            changed.signal()
        } else {
            refuse(version: version, problems: problems)
        }
    }

    private func refuse(version: String, problems: [String]) {
        state.withLock { $0.status.refused = Outcome(version: version, at: Date().formatted(.iso8601), problems: problems) }
        metrics.refused(version: version)
        logger.error("settings change refused; the running settings stay", metadata: [
            "config-version": "\(version)", "problems": "\(problems.joined(separator: "; "))",
        ])
        changed.signal()
    }

    /// The file provider keeps the last good contents of a file that stops parsing, and says
    /// so only in its own log: this makes it a refused version like any other.
    private func reportUnparsable(_ file: WatchedConfigFile) async {
        var lastChecked: String?
        while !Task.isCancelled {
            if let data = FileManager.default.contents(atPath: file.path) {
                let version = "file:" + SHA256.hash(data: data).prefix(6).map { String(format: "%02x", $0) }.joined()
                if version != lastChecked {
                    lastChecked = version
                    if let problem = await WatchedConfigFile.problem(parsing: file.path) { refuse(version: version, problems: [problem]) }
                }
            }
            try? await Task.sleep(for: file.pollInterval)
        }
    }

    /// Marks the settings applied at start as the first version, once every section registered.
    public func markStarted() {
        let settings = SettingsReader(reader)
        for section in state.withLock({ $0.sections }) { _ = try? section.read(settings) }
        let fingerprint = Self.fingerprint(settings.valuesRead)
        let version = settings.string("config.version") ?? fingerprint
        state.withLock { state in
            state.lastSeen = fingerprint
            state.status.applied = Outcome(version: version, at: Date().formatted(.iso8601), problems: [])
        }
        metrics.applied(version: version)
    }

    private func followEtcd(_ changed: @escaping @Sendable () -> Void) async {
        guard let etcd else { return }
        let prefix = etcd.prefix + "/config/"
        var backoff = Duration.milliseconds(200)
        while !Task.isCancelled {
            do {
                let (entries, revision) = try await etcd.store.range(prefix: prefix)
                state.withLock { state in
                    state.etcdValues = Self.values(entries, prefix: etcd.prefix)
                    state.etcdReachable = true
                }
                changed()
                backoff = .milliseconds(200)
                // One watch response carries one revision's events: a transaction arrives whole.
                for try await batch in etcd.store.watch(prefix: prefix, after: revision) {
                    state.withLock { state in
                        for change in batch {
                            switch change {
                            case .put(let entry): state.etcdValues[String(entry.key.dropFirst(prefix.count))] = entry.value
                            case .delete(let key): state.etcdValues[String(key.dropFirst(prefix.count))] = nil
                            }
                        }
                    }
                    changed()
                }
            } catch {
                if Task.isCancelled { return }
                let wasReachable = state.withLock { state in
                    defer { state.etcdReachable = false }
                    return state.etcdReachable
                }
                if wasReachable {
                    logger.warning("etcd settings unreachable; keeping the last known values", metadata: ["error": "\(error)"])
                }
            }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(5))
        }
    }

    static func values(_ entries: [RegistryEntry], prefix: String) -> [String: String] {
        let configPrefix = prefix + "/config/"
        var values: [String: String] = [:]
        for entry in entries where entry.key.hasPrefix(configPrefix) {
            values[String(entry.key.dropFirst(configPrefix.count))] = entry.value
        }
        return values
    }

    /// A short, stable name for a set of values (secrets go in only through the hash).
    static func fingerprint(_ values: [String: String]) -> String {
        let text = values.keys.sorted().map { "\($0)=\(values[$0] ?? "")\n" }.joined()
        return "sha256:" + SHA256.hash(data: Data(text.utf8)).prefix(6).map { String(format: "%02x", $0) }.joined()
    }
}

/// `aisaas_config_*`: reloads by outcome, when the last ones happened, and the versions.
final class ConfigurationMetrics: Sendable {
    private let factory: any MetricsFactory
    private let appliedCount: Counter
    private let refusedCount: Counter
    private let appliedAt: Gauge
    private let refusedAt: Gauge
    private let versions = Mutex<[String: Gauge]>([:])

    init(factory: any MetricsFactory) {
        self.factory = factory
        appliedCount = Counter(label: "aisaas_config_reloads_total", dimensions: [("outcome", "applied")], factory: factory)
        refusedCount = Counter(label: "aisaas_config_reloads_total", dimensions: [("outcome", "refused")], factory: factory)
        appliedAt = Gauge(label: "aisaas_config_last_applied_timestamp_seconds", factory: factory)
        refusedAt = Gauge(label: "aisaas_config_last_refused_timestamp_seconds", factory: factory)
    }

    func applied(version: String) {
        appliedCount.increment()
        appliedAt.record(Date().timeIntervalSince1970)
        show(version, state: "applied")
    }

    func refused(version: String) {
        refusedCount.increment()
        refusedAt.record(Date().timeIntervalSince1970)
        show(version, state: "refused")
    }

    /// `aisaas_config_version_info{state,version}` is 1 for the current version of each state;
    /// the previous one's series is removed.
    private func show(_ version: String, state: String) {
        let gauge = Gauge(label: "aisaas_config_version_info", dimensions: [("state", state), ("version", version)], factory: factory)
        let previous = versions.withLock { versions in
            defer { versions[state] = gauge }
            return versions[state]
        }
        if let previous, previous !== gauge { previous.destroy() }
        gauge.record(1)
    }
}
