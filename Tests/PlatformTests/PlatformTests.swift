import Foundation
import Logging
import Testing
import TestSupport
@testable import Platform

@Suite("platform")
struct PlatformTests {
    @Test("host:port lists parse, including IPv6, and bad items are reported")
    func hostPorts() throws {
        #expect(HostPort(parsing: "127.0.0.1:9101") == HostPort(host: "127.0.0.1", port: 9101))
        #expect(HostPort(parsing: "[::1]:80") == HostPort(host: "::1", port: 80))
        #expect(HostPort(parsing: "users.internal:9101")?.host == "users.internal")
        #expect(HostPort(parsing: "no-port") == nil)
        #expect(HostPort(parsing: "host:70000") == nil)
        let settings = SettingsReader(ConfigurationLoader.fixed(["USER_SERVICE_ADDRS": "127.0.0.1:1, bad, 127.0.0.1:2"]))
        #expect(HostPort.list("user.service.addrs", from: settings).map(\.port) == [1, 2])
        #expect(throws: ConfigurationError.self) { try settings.finish() }
    }

    @Test("settings report every bad value at once")
    func settings() throws {
        let settings = SettingsReader(ConfigurationLoader.fixed(["HTTP_PORT": "abc", "TRUST_FORWARDED_FOR": "maybe", "JWT_EXPIRES_IN": "120"]))
        #expect(settings.int("http.port", default: 9000, range: 0...65535) == 9000)
        #expect(settings.bool("trust.forwarded.for", default: false) == false)
        #expect(settings.int("jwt.expires.in", default: 1, range: 60...600) == 120)
        do {
            try settings.finish()
            Issue.record("expected a configuration error")
        } catch let error as ConfigurationError {
            #expect(error.problems.count == 2)
        }
    }

    @Test("a JSON config file may give numbers unquoted and lists as lists, and the environment wins over it")
    func configFile() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = directory.path + "/config.json"
        try Data(#"{"http": {"port": 9100, "host": "0.0.0.0"}, "trust": {"forwarded": {"for": true}}, "ai": {"providers": ["openai", "local"]}, "cors": {"allowed": {"origins": []}}}"#.utf8).write(to: URL(fileURLWithPath: file))
        let reader = try await ConfigurationLoader.load(environment: ["HTTP_HOST": "127.0.0.2"], envFile: nil, configFile: file)
        let settings = SettingsReader(reader.reader)
        #expect(settings.int("http.port", default: 1, range: 0...65535) == 9100)
        #expect(settings.string("http.host") == "127.0.0.2")
        #expect(settings.bool("trust.forwarded.for", default: false))
        #expect(settings.list("ai.providers") == ["openai", "local"], "a list given as a list")
        #expect(settings.list("cors.allowed.origins").isEmpty)
        await #expect(throws: ConfigurationError.self) {
            _ = try await ConfigurationLoader.load(environment: [:], envFile: nil, configFile: directory.path + "/missing.json")
        }
    }

    @Test("SECRETS_DIR: one file per key (Compose and Kubernetes secrets), below the environment, above the config file")
    func secretsDirectory() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let secrets = directory.path + "/secrets"
        try FileManager.default.createDirectory(atPath: secrets, withIntermediateDirectories: true)
        try Data("from-the-secret-file-0123456789abcdef\n".utf8).write(to: URL(fileURLWithPath: secrets + "/jwt-secret"))
        try Data("9200".utf8).write(to: URL(fileURLWithPath: secrets + "/http-port"))
        try Data("postgres://u:p@db/users".utf8).write(to: URL(fileURLWithPath: secrets + "/user-database-url"))
        let file = directory.path + "/config.json"
        try Data(#"{"http": {"port": 9100}, "jwt": {"secret": "from-the-config-file"}}"#.utf8).write(to: URL(fileURLWithPath: file))
        let reader = try await ConfigurationLoader.load(
            environment: ["SECRETS_DIR": secrets, "USER_DATABASE_URL": "postgres://env/users"], envFile: nil, configFile: file
        )
        let settings = SettingsReader(reader.reader)
        #expect(settings.string("jwt.secret", isSecret: true) == "from-the-secret-file-0123456789abcdef", "trimmed, and above the config file")
        #expect(settings.int("http.port", default: 1, range: 0...65535) == 9200)
        #expect(settings.string("user.database.url") == "postgres://env/users", "the environment wins")
        await #expect(throws: ConfigurationError.self) {
            _ = try await ConfigurationLoader.load(environment: ["SECRETS_DIR": directory.path + "/none"], envFile: nil)
        }
    }

    /// Kubernetes mounts a Secret's keys as symbolic links into a hidden, versioned folder.
    @Test("SECRETS_DIR follows the links of a Kubernetes Secret volume and skips its hidden folders")
    func kubernetesSecretVolume() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let secrets = directory.path + "/secrets"
        let files = FileManager.default
        try files.createDirectory(atPath: secrets + "/..2026_12_06_10_00_00.1", withIntermediateDirectories: true)
        try Data("from-the-secret-volume-0123456789abcdef\n".utf8).write(to: URL(fileURLWithPath: secrets + "/..2026_12_06_10_00_00.1/jwt-secret"))
        try Data("8".utf8).write(to: URL(fileURLWithPath: secrets + "/..2026_12_06_10_00_00.1/bcrypt-cost"))
        try files.createSymbolicLink(atPath: secrets + "/..data", withDestinationPath: "..2026_12_06_10_00_00.1")
        try files.createSymbolicLink(atPath: secrets + "/jwt-secret", withDestinationPath: "..data/jwt-secret")
        try files.createSymbolicLink(atPath: secrets + "/bcrypt-cost", withDestinationPath: "..data/bcrypt-cost")
        try files.createSymbolicLink(atPath: secrets + "/dangling", withDestinationPath: "..data/nothing")
        let settings = SettingsReader(try await ConfigurationLoader.load(environment: ["SECRETS_DIR": secrets], envFile: nil).reader)
        #expect(settings.string("jwt.secret", isSecret: true) == "from-the-secret-volume-0123456789abcdef")
        #expect(settings.int("bcrypt.cost", default: 10, range: 4...31) == 8)
        #expect(settings.string("dangling") == nil)
    }

    @Test("an env file named on purpose must exist; the default .env may not")
    func envFileMustExistWhenNamed() async throws {
        await #expect(throws: ConfigurationError.self) {
            _ = try await ConfigurationLoader.load(environment: [:], envFile: "/nonexistent/prod.env")
        }
        _ = try await ConfigurationLoader.load(environment: [:], envFile: ConfigurationLoader.defaultEnvFile)
    }

    @Test("database URLs choose the driver; passwords never reach a log")
    func databaseLocations() throws {
        #expect(try DatabaseLocation.parse(nil, defaultSQLitePath: "d/u.sqlite").get() == .sqlite(path: "d/u.sqlite"))
        #expect(try DatabaseLocation.parse("sqlite:/tmp/x.sqlite", defaultSQLitePath: "").get() == .sqlite(path: "/tmp/x.sqlite"))
        let postgres = try DatabaseLocation.parse("postgres://app:hunter2@db:5432/users", defaultSQLitePath: "").get()
        #expect(postgres == .postgres(url: "postgres://app:hunter2@db:5432/users"))
        #expect(!postgres.description.contains("hunter2"))
        // The driver refuses this one (sslmode misspelt) with an error quoting the whole URL.
        switch DatabaseLocation.parse("postgres://app:hunter2@db:5432/users?sslmode=verify_ful", defaultSQLitePath: "") {
        case .success(let location): Issue.record("taken: \(location)")
        case .failure(let error):
            #expect(!error.description.contains("hunter2"), "\(error)")
            #expect(error.description.contains("app:***@db"), "\(error)")
        }
        #expect(throws: ConfigurationError.self) { try DatabaseLocation.parse("mysql://x", defaultSQLitePath: "").get() }
    }

    @Test("sortable ids are 26 characters and strictly increasing")
    func sortableIds() {
        let ids = (0..<1000).map { _ in SortableID.make() }
        #expect(ids.allSatisfy(SortableID.isWellFormed))
        #expect(ids == ids.sorted())
        #expect(Set(ids).count == ids.count)
        // Made at different times by a generator of its own, the time decides the order.
        let generator = SortableID.Generator()
        let earlier = generator.make(at: Date(timeIntervalSince1970: 1_000))
        let later = generator.make(at: Date(timeIntervalSince1970: 2_000))
        #expect(earlier.prefix(10) == "000000YGJ0" && later.prefix(10) == "000001X140", "\(earlier) \(later)")
        #expect(earlier < later)
        // Asked for an earlier time after a later one, a generator still counts up.
        let after = generator.make(at: Date(timeIntervalSince1970: 1_000))
        #expect(after > later && after.prefix(10) == later.prefix(10), "\(after)")
    }

    @Test("a sortable id starts with its millisecond timestamp in Crockford base 32, as a ULID does")
    func sortableIdTimestamp() {
        // 5,000,000,000,123 ms in Crockford base 32 (as ULIDs write it; the specification's
        // example 1,469,918,176,385 ms is 01ARYZ6S41). A generator of its own: the process's
        // identifiers keep their times.
        let generator = SortableID.Generator()
        #expect(generator.make(at: Date(timeIntervalSince1970: 5_000_000_000.123)).hasPrefix("04HGKKJM3V"))
        #expect(generator.make(at: Date(timeIntervalSince1970: 1_469_918_176.385)).hasPrefix("04HGKKJM3V"), "never back in time")
        #expect(SortableID.Generator().make(at: Date(timeIntervalSince1970: 1_469_918_176.385)).hasPrefix("01ARYZ6S41"))
        // Within one millisecond the random part counts up from the last identifier.
        let date = Date(timeIntervalSince1970: 5_000_000_001)
        let (first, second) = (generator.make(at: date), generator.make(at: date))
        #expect(first < second && first.prefix(10) == second.prefix(10))
    }

    @Test("random bytes come in the number asked for and differ between draws")
    func randomBytes() {
        for count in [0, 1, 7, 8, 9, 32, 48] {
            #expect(RandomText.bytes(count).count == count)
        }
        #expect(RandomText.bytes(32) != RandomText.bytes(32))
        #expect(Set(RandomText.bytes(4096)).count > 200)
    }

    @Test("random text uses only [A-Za-z0-9]")
    func randomText() {
        let text = RandomText.alphanumeric(4000)
        #expect(text.count == 4000)
        #expect(text.unicodeScalars.allSatisfy { $0.isASCII && CharacterSet.alphanumerics.contains($0) })
        #expect(RandomText.alphanumeric(40) != RandomText.alphanumeric(40))
    }

    @Test("a generated secret is stored owner-only and reused; a configured one wins")
    func persistentSecret() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let logger = Logger(label: "test")
        let first = try PersistentSecret.resolve(configured: nil, name: "s", settingName: "S", byteCount: 32, dataDirectory: directory.path, logger: logger)
        let again = try PersistentSecret.resolve(configured: nil, name: "s", settingName: "S", byteCount: 32, dataDirectory: directory.path, logger: logger)
        #expect(first == again && Data(base64Encoded: first)?.count == 32)
        let attributes = try FileManager.default.attributesOfItem(atPath: directory.path + "/secrets/s")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect(try PersistentSecret.resolve(configured: "set", name: "s", settingName: "S", byteCount: 32, dataDirectory: directory.path, logger: logger) == "set")
    }

    @Test("health status is reported per service, follows the database except for liveness, and flips on shutdown")
    func healthStatus() {
        let health = HealthStatus()
        health.set(.serving)
        health.set(.serving, for: "svc")
        #expect(health.status(of: "svc") == .serving)
        #expect(health.status(of: "other") == nil)
        // A database outage: every service stops serving, but the process is alive.
        health.set(.serving, for: HealthStatus.livenessService)
        health.setAvailable(false)
        #expect(health.status(of: "") == .notServing && health.status(of: "svc") == .notServing)
        #expect(health.status(of: HealthStatus.livenessService) == .serving)
        health.setAvailable(true)
        #expect(health.status(of: "") == .serving)
        health.markAllNotServing()
        #expect(health.status(of: "") == .notServing && health.status(of: "svc") == .notServing)
        #expect(health.status(of: HealthStatus.livenessService) == .notServing)
    }
}
