import FluentKit
import Foundation
import Logging
import SQLKit
import Synchronization
import Testing
import TestSupport
@testable import Platform

@Suite("rows kept between reads")
struct RowCacheTests {
    /// Reads `items.name` by id through a cache, counting the reads that reached the database.
    final class Lookup: Sendable {
        let database: ServiceDatabase
        let cache: RowCache<String>
        let reads = Mutex(0)

        init(database: ServiceDatabase, cache: RowCache<String>) {
            self.database = database
            self.cache = cache
        }

        func name(_ id: Int) async throws -> String? {
            try await database.read(cache, key: String(id)) {
                reads.withLock { $0 += 1 }
                return try await database.reads().raw("SELECT name FROM items WHERE id = \(bind: id)").first()?.decode(column: "name", as: String.self)
            }
        }

        var readCount: Int { reads.withLock { $0 } }
    }

    @Test("a row is read once and kept until a commit by any connection, this process's or another's", arguments: TestDatabaseKind.enabled)
    func keptUntilAnyCommit(kind: TestDatabaseKind) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let location = try await kind.makeLocation(in: directory)
        let measured = try await DatabaseMetricsTests.Measured(location: location)
        let database = measured.database
        defer { Task { await database.shutdown() } }
        try await database.write { sql in
            try await sql.raw("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").run()
            try await sql.raw("INSERT INTO items (id, name) VALUES (1, 'one'), (2, 'two')").run()
        }
        let lookup = Lookup(database: database, cache: database.rowCache(named: "items"))

        #expect(try await lookup.name(1) == "one")
        #expect(try await lookup.name(1) == "one")
        #expect(try await lookup.name(2) == "two")
        guard case .sqlite = kind else {
            // PostgreSQL's replicas write unseen: every lookup reads, and none is counted.
            #expect(lookup.readCount == 3)
            #expect(lookup.cache.count == 0)
            #expect(measured.value(#"aisaas_db_cache_lookups_total{component="test",cache="items",result="miss"}"#) == nil)
            try await database.write { sql in try await sql.raw("UPDATE items SET name = 'uno' WHERE id = 1").run() }
            #expect(try await lookup.name(1) == "uno")
            return
        }
        #expect(lookup.readCount == 2, "the second lookup of item 1 read again")
        #expect(measured.value(#"aisaas_db_cache_lookups_total{component="test",cache="items",result="hit"}"#) == 1)
        #expect(measured.value(#"aisaas_db_cache_lookups_total{component="test",cache="items",result="miss"}"#) == 2)

        // The process's writer commits: every row kept goes, the one changed and the other.
        try await database.write { sql in try await sql.raw("UPDATE items SET name = 'uno' WHERE id = 1").run() }
        #expect(try await lookup.name(1) == "uno")
        #expect(try await lookup.name(2) == "two")
        #expect(lookup.readCount == 4)

        // Fluent's pool, another connection of this process.
        let pool = try #require(database.database() as? any SQLDatabase)
        try await pool.raw("UPDATE items SET name = 'dos' WHERE id = 2").run()
        #expect(try await lookup.name(2) == "dos")

        // Another process on the same file: its own connections, unknown to this one.
        let other = try ServiceDatabase(location: location, migrations: [], logger: Logger(label: "other"))
        do {
            try await other.write { sql in try await sql.raw("UPDATE items SET name = 'eins' WHERE id = 1").run() }
        } catch {
            await other.shutdown()
            throw error
        }
        await other.shutdown()
        #expect(try await lookup.name(1) == "eins")
        let readsSoFar = lookup.readCount
        #expect(try await lookup.name(1) == "eins")
        #expect(lookup.readCount == readsSoFar, "an unchanged database was read again")

        // A row not found is not kept: it may be written next.
        #expect(try await lookup.name(3) == nil)
        try await database.write { sql in try await sql.raw("INSERT INTO items (id, name) VALUES (3, 'three')").run() }
        #expect(try await lookup.name(3) == "three")
    }

    @Test("a cache holds at most its capacity, and a row read before a commit is not kept after it")
    func boundedAndNeverStale() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try ServiceDatabase(location: try await TestDatabaseKind.sqlite.makeLocation(in: directory), migrations: [], logger: Logger(label: "test"))
        defer { Task { await database.shutdown() } }
        try await database.migrate()
        try await database.write { sql in
            try await sql.raw("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").run()
            for id in 1...5 { try await sql.raw("INSERT INTO items (id, name) VALUES (\(bind: id), \(bind: "item \(id)"))").run() }
        }
        let lookup = Lookup(database: database, cache: database.rowCache(named: "items", capacity: 2))
        for id in 1...5 { #expect(try await lookup.name(id) == "item \(id)") }
        #expect(lookup.cache.count <= 2)

        // A commit lands between the version check and the read: the row read (the new one) is
        // filed under the old version, which the next lookup no longer finds current.
        let cache = RowCache<String>(name: "raced", capacity: 10, metrics: nil)
        let raced = try await database.read(cache, key: "1") {
            try await database.write { sql in try await sql.raw("UPDATE items SET name = 'first' WHERE id = 1").run() }
            return try await database.reads().raw("SELECT name FROM items WHERE id = 1").first()?.decode(column: "name", as: String.self)
        }
        #expect(raced == "first")
        try await database.write { sql in try await sql.raw("UPDATE items SET name = 'second' WHERE id = 1").run() }
        let afterward = try await database.read(cache, key: "1") {
            try await database.reads().raw("SELECT name FROM items WHERE id = 1").first()?.decode(column: "name", as: String.self)
        }
        #expect(afterward == "second")
    }
}
