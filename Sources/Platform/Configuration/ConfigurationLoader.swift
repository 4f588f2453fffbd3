import Configuration
import Foundation
import ServiceLifecycle
import SystemPackage

/// Where settings come from, highest precedence first: environment variables, then a `.env`
/// file, then the files of `SECRETS_DIR` (one file per key, `jwt-secret` for `jwt.secret`: Docker
/// and Compose secrets, Kubernetes Secret volumes), then (with `DISCOVERY=etcd`) the keys under
/// `<prefix>/config/` in etcd, then an optional JSON or YAML config file, watched for changes. A
/// key such as `user.database.url` is read as the environment variable `USER_DATABASE_URL`, the
/// etcd key `<prefix>/config/user.database.url` or the file path `{"user": {"database": {"url": …}}}`.
public enum ConfigurationLoader {
    public static func load(
        environment: [String: String] = StartupEnvironment.variables,
        envFile: String? = defaultEnvFile,
        configFile: String? = nil,
        pollInterval: Duration = .seconds(2)
    ) async throws -> PlatformConfiguration {
        var layers: [any ConfigProvider] = [EnvironmentVariablesProvider(environmentVariables: environment)]
        if let envFile {
            // The default `.env` may be absent; a file named on purpose must be there.
            if envFile != defaultEnvFile, !FileManager.default.fileExists(atPath: envFile) {
                throw ConfigurationError(problems: ["the env file \(envFile) does not exist"])
            }
            layers.append(try await EnvironmentVariablesProvider(environmentFilePath: FilePath(envFile), allowMissing: true))
        }
        if let secrets = environment["SECRETS_DIR"], !secrets.isEmpty {
            layers.append(EnvironmentVariablesProvider(environmentVariables: try secretFiles(in: secrets), secretsSpecifier: .all))
        }
        let configFile = configFile ?? environment["CONFIG_FILE"]
        var file: WatchedConfigFile?
        if let configFile, !configFile.isEmpty {
            file = try await WatchedConfigFile.open(path: configFile, pollInterval: pollInterval)
        }
        return PlatformConfiguration(layers: layers, file: file)
    }

    /// The `.env` of the working directory, read when it is there.
    public static let defaultEnvFile = ".env"

    /// The files of a secrets folder as the environment variables they stand for (`jwt-secret`:
    /// `JWT_SECRET`), contents trimmed. Kubernetes mounts each key of a Secret as a symbolic link
    /// into a hidden `..data` folder: links are followed, hidden names skipped.
    static func secretFiles(in directory: String) throws -> [String: String] {
        var isDirectory: Bool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory else {
            throw ConfigurationError(problems: ["SECRETS_DIR \(directory) does not exist or is not a folder"])
        }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw ConfigurationError(problems: ["SECRETS_DIR \(directory) cannot be read"])
        }
        var values: [String: String] = [:]
        for name in names where !name.hasPrefix(".") {
            let path = directory + "/" + name
            // fileExists follows links; a link to a folder, or a dangling one, is no secret.
            var entryIsDirectory: Bool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &entryIsDirectory), !entryIsDirectory else { continue }
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ConfigurationError(problems: ["the secret file \(path) cannot be read"])
            }
            let variable = name.uppercased().replacingOccurrences(of: "-", with: "_").replacingOccurrences(of: ".", with: "_")
            values[variable] = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return values
    }

    /// A reader over fixed values, for tests and embedding.
    public static func fixed(_ values: [String: String]) -> ConfigReader {
        ConfigReader(provider: EnvironmentVariablesProvider(environmentVariables: values))
    }
}

/// The sources of one process's settings: the fixed layers (environment, `.env`, secrets) and the
/// watched config file. The configuration center adds etcd's keys between the two.
public struct PlatformConfiguration: Sendable {
    public let layers: [any ConfigProvider]
    public let file: WatchedConfigFile?

    public init(layers: [any ConfigProvider], file: WatchedConfigFile? = nil) {
        self.layers = layers
        self.file = file
    }

    /// Fixed values, for tests and embedding.
    public static func fixed(_ values: [String: String]) -> PlatformConfiguration {
        PlatformConfiguration(layers: [EnvironmentVariablesProvider(environmentVariables: values)])
    }

    /// Every source but etcd, as it is now.
    public var reader: ConfigReader { reader(etcd: nil) }

    func reader(etcd: (any ConfigProvider)?) -> ConfigReader {
        var providers = layers
        if let etcd { providers.append(etcd) }
        if let file { providers.append(file.provider) }
        return ConfigReader(providers: providers)
    }
}

/// `CONFIG_FILE`: JSON, or YAML when the name ends in `.yaml` or `.yml` (a mounted Kubernetes
/// ConfigMap). It is read again when it changes (checked every `pollInterval`, and on SIGHUP); a
/// file that no longer parses keeps the last good contents and the configuration center reports it.
public struct WatchedConfigFile: Sendable {
    public let path: String
    let pollInterval: Duration
    let provider: any ConfigProvider
    /// Polls the file; runs with the process.
    let watcher: any Service
    /// Calls `changed` after each reload (and once at once) until cancelled.
    let follow: @Sendable (_ changed: @escaping @Sendable () -> Void) async throws -> Void

    public static func isYAML(_ path: String) -> Bool {
        let lowered = path.lowercased()
        return lowered.hasSuffix(".yaml") || lowered.hasSuffix(".yml")
    }

    static func open(path: String, pollInterval: Duration) async throws -> WatchedConfigFile {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ConfigurationError(problems: ["config file \(path) does not exist"])
        }
        do {
            if isYAML(path) {
                return make(path: path, pollInterval, try await ReloadingFileProvider<YAMLSnapshot>(filePath: FilePath(path), pollInterval: pollInterval))
            }
            return make(path: path, pollInterval, try await ReloadingFileProvider<JSONSnapshot>(filePath: FilePath(path), pollInterval: pollInterval))
        } catch {
            throw ConfigurationError(problems: ["config file \(path) cannot be read: \(error)"])
        }
    }

    private static func make<Snapshot>(path: String, _ pollInterval: Duration, _ provider: ReloadingFileProvider<Snapshot>) -> WatchedConfigFile {
        WatchedConfigFile(path: path, pollInterval: pollInterval, provider: provider, watcher: provider) { changed in
            try await provider.watchSnapshot { updates in
                for await _ in updates { changed() }
            }
        }
    }

    /// Parses `path` as the process would, without applying it: nil, or what is wrong.
    public static func problem(parsing path: String) async -> String? {
        guard FileManager.default.fileExists(atPath: path) else { return "\(path) does not exist" }
        do {
            if isYAML(path) {
                _ = try await FileProvider<YAMLSnapshot>(filePath: FilePath(path))
            } else {
                _ = try await FileProvider<JSONSnapshot>(filePath: FilePath(path))
            }
            return nil
        } catch {
            return "\(path) does not parse: \(error)"
        }
    }
}

/// Settings that could not be used, listed together so one run reports every mistake.
public struct ConfigurationError: Error, CustomStringConvertible {
    public var problems: [String]

    public init(problems: [String]) { self.problems = problems }

    public var description: String {
        "invalid configuration:\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
    }
}

/// Typed, validated reads from a `ConfigReader`. Reads never fail on their own: each problem is
/// recorded and `finish()` throws them all at once.
public final class SettingsReader {
    private let reader: ConfigSnapshotReader
    private var problems: [String] = []
    /// Every value read, by key: what the configuration center compares and fingerprints.
    public private(set) var valuesRead: [String: String] = [:]

    /// Reads one snapshot of `reader`: every value comes from the same state of its sources.
    public init(_ reader: ConfigReader) {
        self.reader = reader.snapshot()
    }

    private static func environmentName(_ key: String) -> String {
        key.replacingOccurrences(of: ".", with: "_").uppercased()
    }

    /// The value as text. A JSON or YAML config file may give numbers and booleans unquoted, and
    /// a list as a list (`providers: [openai, local]`), read as the environment's comma-separated
    /// text.
    public func string(_ key: String, isSecret: Bool = false) -> String? {
        let configKey = ConfigKey(stringLiteral: key)
        let scalar: String? = reader.string(forKey: configKey, isSecret: isSecret)
            ?? reader.int(forKey: configKey).map(String.init)
            ?? reader.double(forKey: configKey).map { String($0) }
            ?? reader.bool(forKey: configKey).map(String.init)
        let list: [String]? = reader.stringArray(forKey: configKey, isSecret: isSecret)
            ?? reader.intArray(forKey: configKey).map { $0.map(String.init) }
        let text = scalar ?? list.map { $0.joined(separator: ",") }
        guard let value = text else { return nil }
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty { return nil }
        valuesRead[key] = trimmed
        return trimmed
    }

    public func string(_ key: String, default defaultValue: String) -> String {
        string(key) ?? defaultValue
    }

    public func int(_ key: String, default defaultValue: Int, range: ClosedRange<Int>) -> Int {
        guard let text = string(key) else { return defaultValue }
        guard let value = Int(text), range.contains(value) else {
            problems.append("\(Self.environmentName(key)) must be an integer in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
            return defaultValue
        }
        return value
    }

    public func bool(_ key: String, default defaultValue: Bool) -> Bool {
        guard let text = string(key)?.lowercased() else { return defaultValue }
        switch text {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default:
            problems.append("\(Self.environmentName(key)) must be true or false, got '\(text)'")
            return defaultValue
        }
    }

    /// A comma-separated list, items trimmed, empty items dropped.
    public func list(_ key: String) -> [String] {
        guard let text = string(key) else { return [] }
        return text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    public func report(_ problem: String) {
        problems.append(problem)
    }

    public var problemsSoFar: [String] { problems }

    public func finish() throws {
        if !problems.isEmpty { throw ConfigurationError(problems: problems) }
    }
}
