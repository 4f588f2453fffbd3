import Configuration
import Foundation
import SystemPackage

/// Where settings come from, highest precedence first: environment variables, then a `.env`
/// file, then the files of `SECRETS_DIR` (one file per key, `jwt-secret` for `jwt.secret`: Docker
/// and Compose secrets, Kubernetes Secret volumes), then an optional JSON config file. A key such as `user.database.url` is read as the
/// environment variable `USER_DATABASE_URL` or the JSON path `{"user": {"database": {"url": …}}}`.
public enum ConfigurationLoader {
    public static func load(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        envFile: String? = ".env",
        configFile: String? = nil
    ) async throws -> ConfigReader {
        var providers: [any ConfigProvider] = [EnvironmentVariablesProvider(environmentVariables: environment)]
        if let envFile {
            providers.append(try await EnvironmentVariablesProvider(environmentFilePath: FilePath(envFile), allowMissing: true))
        }
        if let secrets = environment["SECRETS_DIR"], !secrets.isEmpty {
            guard FileManager.default.fileExists(atPath: secrets) else {
                throw ConfigurationError(problems: ["SECRETS_DIR \(secrets) does not exist"])
            }
            providers.append(try await DirectoryFilesProvider(directoryPath: FilePath(secrets)))
        }
        let configFile = configFile ?? environment["CONFIG_FILE"]
        if let configFile, !configFile.isEmpty {
            guard FileManager.default.fileExists(atPath: configFile) else {
                throw ConfigurationError(problems: ["config file \(configFile) does not exist"])
            }
            providers.append(try await FileProvider<JSONSnapshot>(filePath: FilePath(configFile)))
        }
        return ConfigReader(providers: providers)
    }

    /// A reader over fixed values, for tests and embedding.
    public static func fixed(_ values: [String: String]) -> ConfigReader {
        ConfigReader(provider: EnvironmentVariablesProvider(environmentVariables: values))
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
    private let reader: ConfigReader
    private var problems: [String] = []

    public init(_ reader: ConfigReader) {
        self.reader = reader
    }

    private static func environmentName(_ key: String) -> String {
        key.replacingOccurrences(of: ".", with: "_").uppercased()
    }

    /// The value as text. A JSON config file may give numbers and booleans unquoted.
    public func string(_ key: String, isSecret: Bool = false) -> String? {
        let configKey = ConfigKey(stringLiteral: key)
        let text = reader.string(forKey: configKey, isSecret: isSecret)
            ?? reader.int(forKey: configKey).map(String.init)
            ?? reader.double(forKey: configKey).map { String($0) }
            ?? reader.bool(forKey: configKey).map(String.init)
        guard let value = text else { return nil }
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        return trimmed.isEmpty ? nil : trimmed
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

    public func finish() throws {
        if !problems.isEmpty { throw ConfigurationError(problems: problems) }
    }
}
