import AIService
import ArgumentParser
import Configuration
import Foundation
import Gateway
import Platform

/// `aisaas config …`: reads, writes (etcd) and checks settings.
public struct ConfigCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Read, write (etcd) and check settings.",
        discussion: """
            Dynamic settings (rate limits, login throttle, prices, providers, quota defaults, CORS \
            origins, log level, access log, sampler) apply on every replica within seconds of a \
            change in etcd (<ETCD_PREFIX>/config/<key>) or in CONFIG_FILE; the others at the next \
            restart. Keys are written as in the README, lower case with dots (ai.rate.limit.per.minute), \
            or as their environment variable (AI_RATE_LIMIT_PER_MINUTE).
            """,
        subcommands: [ConfigGet.self, ConfigSet.self, ConfigValidate.self]
    )

    public init() {}
}

/// Every problem any process would find in the settings `reader` gives (secrets are not
/// generated, so the gateway's and the user service's startup checks are left to them).
func settingsProblems(_ reader: ConfigReader) -> [String] {
    let settings = SettingsReader(reader)
    let common = CommonSettings.read(settings)
    _ = ObservabilitySettings.read(settings)
    // Every process applies these as it runs, traced or not (the sampler is read even with tracing off).
    _ = ObservabilitySettings.Dynamic.read(settings)
    _ = GatewayDynamicSettings.read(settings)
    _ = DiscoverySettings.read(settings)
    var problems = settings.problemsSoFar
    do {
        _ = try AIServiceSettings.read(SettingsReader(reader), common: common, defaultPort: 0)
    } catch let error as ConfigurationError {
        problems += error.problems
    } catch {
        problems.append("\(error)")
    }
    var seen: Set<String> = []
    return problems.filter { seen.insert($0).inserted }
}

/// Keys whose values are not printed (`key` in any spelling: `JWT_SECRET`, `jwt.secret`).
func isSecretKey(_ key: String) -> Bool {
    let key = settingsKey(key)
    return ["api.key", "password", "secret", "database.url", "master.key"].contains { key.contains($0) }
}

/// A key as the settings name it, from either spelling: `AI_RATE_LIMIT_PER_MINUTE` is
/// `ai.rate.limit.per.minute` (the environment variable's name, which problems are reported by).
func settingsKey(_ key: String) -> String {
    key.trimmingCharacters(in: .whitespaces).lowercased().replacingOccurrences(of: "_", with: ".")
}

/// A command that cannot do its work (etcd unreachable): one line on standard error, exit 1.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
}

/// `body`'s answer from etcd, or a failure that names the endpoints it could not reach.
func reachingEtcd<Value>(_ discovery: DiscoverySettings, _ body: () async throws -> Value) async throws -> Value {
    do {
        return try await body()
    } catch {
        throw CommandFailure(description: "cannot reach etcd at \(discovery.etcdEndpoints.joined(separator: ", ")): \(error)")
    }
}

/// The etcd store and center of the settings `source` names; etcd is required.
func etcdCenter(_ source: SourceOptions) async throws -> (ConfigurationCenter, any RegistryStore, String) {
    let (configuration, logger) = try await source.load()
    let settings = SettingsReader(configuration.reader)
    var discovery = DiscoverySettings.read(settings)
    try settings.finish()
    discovery.mode = .etcd
    guard let store = discovery.makeStore() else {
        throw ValidationError("ETCD_ENDPOINTS is not set: settings are written to etcd")
    }
    let center = ConfigurationCenter(configuration: configuration, etcd: (store, discovery.etcdPrefix), logger: logger)
    _ = try await reachingEtcd(discovery) { try await store.range(prefix: discovery.etcdPrefix + "/config/") }
    await center.loadInitial()
    return (center, store, discovery.etcdPrefix)
}

struct ConfigGet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Print the settings stored in etcd, or with KEY the value every source gives it (environment > etcd > file > default)."
    )

    @OptionGroup var source: SourceOptions

    @Argument(help: "A key such as ai.rate.limit.per.minute.")
    var key: String?

    @Flag(help: "JSON instead of lines.")
    var json = false

    func run() async throws {
        try await runReportingConfigurationErrors { try await get() }
    }

    private func get() async throws {
        let (center, _, prefix) = try await etcdCenter(source)
        if let key = key.map(settingsKey) {
            let value = SettingsReader(center.reader).string(key, isSecret: isSecretKey(key))
            let shown = value.map { isSecretKey(key) ? "(set, not shown)" : $0 }
            if json {
                let object: [String: Any] = ["key": key, "value": shown.map { $0 as Any } ?? NSNull()]
                let data = try JSONSerialization.data(withJSONObject: object, options: .sortedKeys)
                print(String(decoding: data, as: UTF8.self))
            } else {
                print(shown ?? "(not set: the default applies)")
            }
            return
        }
        let values = center.etcdValues
        if json {
            let shown = Dictionary(uniqueKeysWithValues: values.map { key, value in (key, isSecretKey(key) ? "(set, not shown)" : value) })
            let data = try JSONSerialization.data(withJSONObject: shown, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        for key in values.keys.sorted() {
            print("\(key)=\(isSecretKey(key) ? "(set, not shown)" : values[key] ?? "")")
        }
        if values.isEmpty { print("(no settings under \(prefix)/config/)") }
    }
}

struct ConfigSet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Write settings to etcd (KEY=VALUE …; KEY= deletes), after checking that every process would accept the result."
    )

    @OptionGroup var source: SourceOptions

    @Argument(help: "KEY=VALUE pairs, e.g. ai.rate.limit.per.minute=120; KEY= removes the key.")
    var assignments: [String]

    func run() async throws {
        try await runReportingConfigurationErrors {
            var changes: [String: String?] = [:]
            for assignment in assignments {
                guard let equals = assignment.firstIndex(of: "="), equals != assignment.startIndex else {
                    throw ValidationError("\(assignment.quotedForMessage) is not KEY=VALUE")
                }
                let key = settingsKey(String(assignment[..<equals]))
                let value = assignment[assignment.index(after: equals)...].trimmingCharacters(in: .whitespaces)
                guard key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-" }) else {
                    throw ValidationError("\(key.quotedForMessage) is not a settings key (letters, digits and dots)")
                }
                changes[key] = value.isEmpty ? String?.none : value
            }
            let (center, store, prefix) = try await etcdCenter(source)
            let problems = settingsProblems(center.reader(etcdChanges: changes))
            guard problems.isEmpty else { throw ConfigurationError(problems: problems) }
            // One transaction: every replica sees the whole change at once, or none of it.
            var keyed: [String: String?] = [:]
            for (key, value) in changes { keyed[ConfigurationCenter.etcdKey(prefix: prefix, key: key)] = value }
            try await store.write(keyed)
            for (key, value) in changes.sorted(by: { $0.key < $1.key }) {
                print(value == nil ? "deleted \(key)" : "set \(key)")
            }
        }
    }
}

struct ConfigValidate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check a JSON or YAML settings file without applying it; exits 78 and lists the problems if any."
    )

    @Argument(help: "The file (JSON, or YAML when it ends in .yaml or .yml).")
    var file: String

    func run() async throws {
        try await runReportingConfigurationErrors {
            if let problem = await WatchedConfigFile.problem(parsing: file) {
                throw ConfigurationError(problems: [problem])
            }
            let configuration = try await ConfigurationLoader.load(environment: [:], envFile: nil, configFile: file)
            let problems = settingsProblems(configuration.reader)
            guard problems.isEmpty else { throw ConfigurationError(problems: problems) }
            print("\(file): valid")
        }
    }
}
