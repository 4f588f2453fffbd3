import FluentKit
import Foundation
import Logging
import Platform
import SQLKit

/// The databases a suite runs against: SQLite always, PostgreSQL too when `TEST_POSTGRES_URL`
/// names a server (each test then gets a database of its own, created on the fly).
public enum TestDatabaseKind: String, Sendable, CaseIterable, CustomStringConvertible {
    case sqlite
    case postgres

    public static var enabled: [TestDatabaseKind] {
        postgresURL == nil ? [.sqlite] : [.sqlite, .postgres]
    }

    public static var postgresURL: String? {
        ProcessInfo.processInfo.environment["TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }

    public var description: String { rawValue }

    /// A new, empty database of this kind.
    public func makeLocation(in directory: TemporaryDirectory, name: String = "db") async throws -> DatabaseLocation {
        switch self {
        case .sqlite:
            return .sqlite(path: directory.path + "/\(name).sqlite")
        case .postgres:
            guard let base = Self.postgresURL, var components = URLComponents(string: base) else {
                throw ConfigurationError(problems: ["TEST_POSTGRES_URL is not set"])
            }
            let database = "t_" + RandomText.alphanumeric(16).lowercased()
            let admin = try ServiceDatabase(location: .postgres(url: base), migrations: [], logger: Logger(label: "test"))
            do {
                if let sql = admin.database() as? any SQLDatabase {
                    try await sql.raw("CREATE DATABASE \(unsafeRaw: database)").run()
                }
                await admin.shutdown()
            } catch {
                await admin.shutdown()
                throw error
            }
            components.path = "/" + database
            return .postgres(url: components.string ?? base)
        }
    }
}

/// A folder under the system's temporary directory, removed by `remove()`.
public struct TemporaryDirectory: Sendable {
    public let path: String

    public init() throws {
        path = NSTemporaryDirectory() + "aisaas-test-" + RandomText.alphanumeric(12)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

extension ServiceDatabase {
    /// Runs `body` with a new database at `location`, migrated, and shuts it down on every path:
    /// a test that throws must not leave its pools open (debug builds stop on a database released
    /// without `shutdown()`).
    public static func using<Result: Sendable>(
        _ location: DatabaseLocation, migrations: [any Migration] = [], logger: Logger = Logger(label: "test"),
        _ body: (ServiceDatabase) async throws -> Result
    ) async throws -> Result {
        let database = try ServiceDatabase(location: location, migrations: migrations, logger: logger)
        do {
            try await database.migrate()
            let result = try await body(database)
            await database.shutdown()
            return result
        } catch {
            await database.shutdown()
            throw error
        }
    }
}
