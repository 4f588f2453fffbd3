import FluentKit
import Foundation
import Logging
import Prometheus
import SQLKit
import Testing
import TestSupport
import Tracing
@testable import Platform

@Suite("database metrics")
struct DatabaseMetricsTests {
    /// A database whose telemetry writes to a registry of the test's own.
    struct Measured {
        let database: ServiceDatabase
        let registry: PrometheusCollectorRegistry
        let telemetry: Telemetry

        init(kind: TestDatabaseKind, directory: TemporaryDirectory) async throws {
            try await self.init(location: try await kind.makeLocation(in: directory))
        }

        init(location: DatabaseLocation) async throws {
            registry = PrometheusCollectorRegistry()
            telemetry = Telemetry(component: "test", metrics: ObservabilityRuntime.prometheusFactory(registry), tracer: NoOpTracer())
            database = try ServiceDatabase(location: location, migrations: [], logger: Logger(label: "test"), telemetry: telemetry)
            do {
                try await database.migrate()
            } catch {
                await database.shutdown()
                throw error
            }
        }

        /// The value of the series whose line starts with `series` (name and labels as exposed).
        func value(_ series: String) -> Double? {
            telemetry.beforeScrape.run()
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            let line = String(decoding: buffer, as: UTF8.self).split(separator: "\n").first { $0.hasPrefix(series + " ") }
            return line.flatMap { Double($0.split(separator: " ").last ?? "") }
        }
    }

    @Test("failed statements count as errors by operation; Fluent's queries and transactions are measured like SQL", arguments: TestDatabaseKind.enabled)
    func errorsAndFluentPath(kind: TestDatabaseKind) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let measured = try await Measured(kind: kind, directory: directory)
        let database = measured.database
        defer { Task { await database.shutdown() } }
        let system = kind == .sqlite ? "sqlite" : "postgresql"
        try await database.write { sql in try await sql.raw("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)").run() }

        for _ in 0..<2 {
            await #expect(throws: (any Error).self) { try await database.reads().raw("SELECT * FROM missing_table").run() }
        }
        #expect(measured.value(#"db_client_operation_errors_total{component="test",db_system_name="\#(system)",db_operation_name="SELECT"}"#) == 2)

        // The pool handle, as a Fluent database: a model-style query, SQL on it, a transaction.
        let pool = database.database()
        #expect(try await Note.query(on: pool).count() == 0)
        let sql = try #require(pool as? any SQLDatabase, "the pool handle stays an SQLDatabase")
        try await sql.raw("INSERT INTO notes (id, body) VALUES (1, 'a')").run()
        try await pool.transaction { inner in
            guard let sql = inner as? any SQLDatabase else { throw CancellationError() }
            try await sql.raw("UPDATE notes SET body = 'b' WHERE id = 1").run()
        }
        let labels = #"component="test",db_system_name="\#(system)""#
        #expect(measured.value(#"db_client_operation_duration_seconds_count{\#(labels),db_operation_name="SELECT",db_collection_name="notes"}"#) == 1)
        #expect(measured.value(#"db_client_operation_duration_seconds_count{\#(labels),db_operation_name="INSERT",db_collection_name="notes"}"#) == 1)
        #expect(measured.value(#"db_client_operation_duration_seconds_count{\#(labels),db_operation_name="UPDATE",db_collection_name="notes"}"#) == 1)
        #expect((measured.value(#"db_client_operation_duration_seconds_count{\#(labels),db_operation_name="TRANSACTION",db_collection_name=""}"#) ?? 0) >= 1)
        // Nothing holds a connection once the work is done.
        #expect(measured.value(#"db_client_connection_count{\#(labels),state="used"}"#) == 0)
        #expect(measured.value(#"db_client_connection_pending_requests{\#(labels)}"#) == 0)
    }

    @Test("a held writer shows as a connection in use, the callers queued behind it as pending")
    func connectionGauges() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let measured = try await Measured(kind: .sqlite, directory: directory)
        let database = measured.database
        let labels = #"component="test",db_system_name="sqlite""#
        #expect(measured.value(#"db_client_connection_count{\#(labels),state="idle"}"#) == 3)

        let (release, releaser) = AsyncStream.makeStream(of: Void.self)
        let (started, starter) = AsyncStream.makeStream(of: Void.self)
        let holder = Task {
            try await database.writeTransaction { sql in
                try await sql.raw("SELECT 1").run()
                starter.yield()
                for await _ in release { break }
            }
        }
        for await _ in started { break }
        let queued = (0..<2).map { _ in Task { try await database.write { sql in try await sql.raw("SELECT 2").run() } } }
        var pending: Double?
        for _ in 0..<200 {
            pending = measured.value(#"db_client_connection_pending_requests{\#(labels)}"#)
            if pending == 2 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(pending == 2)
        #expect(measured.value(#"db_client_connection_count{\#(labels),state="used"}"#) == 1)
        #expect(measured.value(#"db_client_connection_count{\#(labels),state="idle"}"#) == 2)

        releaser.yield()
        try await holder.value
        for task in queued { try await task.value }
        #expect(measured.value(#"db_client_connection_pending_requests{\#(labels)}"#) == 0)
        #expect(measured.value(#"db_client_connection_count{\#(labels),state="used"}"#) == 0)
        await database.shutdown()
    }

    @Test("each group commit's size goes into the batch histogram of its writer")
    func batchSizes() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let measured = try await Measured(kind: .sqlite, directory: directory)
        let (release, releaser) = AsyncStream.makeStream(of: Void.self)
        let gate = AsyncSerialLock()
        let batcher = WriteBatcher<Int, Int>(observeBatch: measured.database.batchObserver(writer: "test_writer")) { entries in
            // The first batch waits until the others have queued up behind it.
            if entries == [0] { for await _ in release { break } }
            return await gate.withLock { entries }
        }
        let first = Task { await batcher.submit(0) }
        while batcher.waitingCount == 0 && measured.value(#"aisaas_db_write_batch_size_count{component="test",writer="test_writer"}"#) != 1 {
            try await Task.sleep(for: .milliseconds(5))
        }
        let rest = (1...5).map { n in Task { await batcher.submit(n) } }
        while batcher.waitingCount < 5 { try await Task.sleep(for: .milliseconds(5)) }
        releaser.yield()
        #expect(await first.value == 0)
        for (n, task) in zip(1...5, rest) { #expect(await task.value == n) }
        #expect(measured.value(#"aisaas_db_write_batch_size_count{component="test",writer="test_writer"}"#) == 2)
        #expect(measured.value(#"aisaas_db_write_batch_size_sum{component="test",writer="test_writer"}"#) == 6)
        await measured.database.shutdown()
    }
}

/// A Fluent model for the query path. Fluent's models are classes with property wrappers, never
/// `Sendable`; this one is made and read by one task at a time.
final class Note: Model, @unchecked Sendable {
    static let schema = "notes"
    @ID(custom: "id", generatedBy: .user) var id: Int?
    @Field(key: "body") var body: String

    init() {}
}

@Suite("statement labels")
struct StatementLabelTests {
    @Test("the kind and first table of a statement, in any case and quoting; never a value")
    func describesStatements() {
        let cases: [(String, String, String)] = [
            ("SELECT id, name, (SELECT 1 FROM x) FROM \"users\" WHERE id = $1", "SELECT", "x"),
            ("select a,b from usage_record where user_id = ?", "SELECT", "usage_record"),
            ("INSERT INTO quota(user_id, used) VALUES ($1, $2)", "INSERT", "quota"),
            ("insert or replace into `nonce` values (?)", "INSERT", "nonce"),
            ("UPDATE OR REPLACE api_key SET name = 'secret value' WHERE id = 1", "UPDATE", "api_key"),
            ("update\n\t[users]\nset x = 1", "UPDATE", "users"),
            ("DELETE FROM revocation WHERE created < $1", "DELETE", "revocation"),
            ("BEGIN IMMEDIATE", "BEGIN", ""),
            ("PRAGMA journal_mode=WAL", "PRAGMA", ""),
            ("   ", "UNKNOWN", ""),
            ("SELECT 1", "SELECT", ""),
        ]
        for (sql, operation, table) in cases {
            let described = DatabaseInstrumentation.describe(sql)
            #expect(described.operation == operation && described.table == table, "\(sql) → \(described)")
        }
    }
}
