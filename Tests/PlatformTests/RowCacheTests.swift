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
        private let reads = Mutex(0)

        init(database: ServiceDatabase, cache: RowCache<String>) {
            self.database = database
            self.cache = cache
        }

        func name(_ id: Int, meanwhile: @Sendable () async throws -> Void = {}) async throws -> String? {
            try await database.read(cache, key: String(id)) {
                reads.withLock { $0 += 1 }
                let name = try await database.reads().raw("SELECT name FROM items WHERE id = \(bind: id)").first()?.decode(column: "name", as: String.self)
                try await meanwhile()
                return name
            }
        }

        var readCount: Int { reads.withLock { $0 } }
    }

    /// `items` (ids 1...count) with its change count, and a table beside it.
    static func makeItems(_ database: ServiceDatabase, count: Int = 2) async throws {
        try await database.write { sql in
            try await sql.raw("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").run()
            try await sql.raw("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)").run()
            for id in 1...count { try await sql.raw("INSERT INTO items (id, name) VALUES (\(bind: id), \(bind: "item \(id)"))").run() }
        }
        try await CountTableChanges(table: "items").prepare(on: database.database())
    }

    /// A SQLite database in a folder of its own, holding `items` (ids 1...count), and a lookup of
    /// them; `close()` shuts it down and removes the folder.
    struct Items {
        let directory: TemporaryDirectory
        let database: ServiceDatabase
        let lookup: Lookup

        static func open(count: Int = 2, capacity: Int = 10_000) async throws -> Items {
            let directory = try TemporaryDirectory()
            let database = try ServiceDatabase(location: try await TestDatabaseKind.sqlite.makeLocation(in: directory), migrations: [], logger: Logger(label: "test"))
            do {
                try await database.migrate()
                try await makeItems(database, count: count)
            } catch {
                await database.shutdown()
                directory.remove()
                throw error
            }
            return Items(directory: directory, database: database, lookup: Lookup(database: database, cache: database.rowCache(named: "items", table: "items", capacity: capacity)))
        }

        func close() async {
            await database.shutdown()
            directory.remove()
        }
    }

    @Test("a row is read once and kept until its table changes, through any connection or process", arguments: TestDatabaseKind.enabled)
    func keptUntilTheTableChanges(kind: TestDatabaseKind) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let location = try await kind.makeLocation(in: directory)
        let measured = try await DatabaseMetricsTests.Measured(location: location)
        let database = measured.database
        defer { Task { await database.shutdown() } }
        try await Self.makeItems(database)
        let lookup = Lookup(database: database, cache: database.rowCache(named: "items", table: "items"))

        #expect(try await lookup.name(1) == "item 1")
        #expect(try await lookup.name(1) == "item 1")
        #expect(try await lookup.name(2) == "item 2")
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

        // Another table changes: the rows stay.
        try await database.write { sql in try await sql.raw("INSERT INTO notes (id, body) VALUES (1, 'n')").run() }
        #expect(try await lookup.name(1) == "item 1")
        #expect(lookup.readCount == 2, "a write to another table let the rows go")

        // The process's writer changes one row: every row kept goes, the one changed and the other.
        try await database.write { sql in try await sql.raw("UPDATE items SET name = 'uno' WHERE id = 1").run() }
        #expect(try await lookup.name(1) == "uno")
        #expect(try await lookup.name(2) == "item 2")
        #expect(lookup.readCount == 4)

        // Fluent's pool, another connection of this process; a delete.
        let pool = try #require(database.database() as? any SQLDatabase)
        try await pool.raw("UPDATE items SET name = 'dos' WHERE id = 2").run()
        #expect(try await lookup.name(2) == "dos")
        try await pool.raw("DELETE FROM items WHERE id = 2").run()
        #expect(try await lookup.name(2) == nil)

        // Connections unknown to this database: a second one on the same file.
        let other = try ServiceDatabase(location: location, migrations: [], logger: Logger(label: "other"))
        do {
            try await other.write { sql in try await sql.raw("UPDATE items SET name = 'eins' WHERE id = 1").run() }
        } catch {
            await other.shutdown()
            throw error
        }
        await other.shutdown()
        #expect(try await lookup.name(1) == "eins")

        // A row not found is not kept: each lookup reads.
        let before = lookup.readCount
        #expect(try await lookup.name(3) == nil)
        #expect(try await lookup.name(3) == nil)
        #expect(lookup.readCount == before + 2)
    }

    @Test("a row read before a change is never kept under the count after it")
    func neverStaleUnderRaces() async throws {
        let items = try await Items.open()
        defer { Task { await items.close() } }
        let (database, lookup) = (items.database, items.lookup)
        @Sendable func rename(_ id: Int, _ name: String) async throws {
            try await database.write { sql in try await sql.raw("UPDATE items SET name = \(bind: name) WHERE id = \(bind: id)").run() }
        }

        // The row is read, then the table changes before the lookup keeps it: it is filed under
        // the count from before, and the next lookup, with nothing written since, reads again.
        #expect(try await lookup.name(1) { try await rename(1, "first") } == "item 1")
        #expect(try await lookup.name(1) == "first")

        // A slow lookup read the count and the row before a change; a faster one saw the change
        // and kept the new row. The slow one's row is not kept, nor does it let the new one go.
        let slow = try await lookup.name(2) {
            try await rename(2, "second")
            #expect(try await lookup.name(2) == "second")
        }
        #expect(slow == "item 2")
        let reads = lookup.readCount
        #expect(try await lookup.name(2) == "second")
        #expect(lookup.readCount == reads, "the newer row was let go")
    }

    @Test("a database restored from a backup, then written to, is read again; a count removed by hand means no cache, not failures")
    func restoredOrTamperedCount() async throws {
        let items = try await Items.open()
        defer { Task { await items.close() } }
        let (database, lookup) = (items.database, items.lookup)
        func changes() async throws -> Int? {
            try await database.reads().raw("SELECT changes FROM table_changes WHERE name = 'items'").first()?.decode(column: "changes", as: Int.self)
        }

        // The backup: the table as it is now, and its count.
        let backedUp = try #require(try await changes())
        try await database.write { sql in try await sql.raw("UPDATE items SET name = 'renamed' WHERE id = 1").run() }
        #expect(try await lookup.name(1) == "renamed")
        // The restore puts back the backup's rows and count; as many writes follow as came
        // between the backup and the restore, at least a millisecond later.
        try await database.write { sql in
            try await sql.raw("UPDATE items SET name = 'item 1' WHERE id = 1").run()
            try await sql.raw("UPDATE table_changes SET changes = \(bind: backedUp) WHERE name = 'items'").run()
        }
        try await Task.sleep(for: .milliseconds(5))
        try await database.write { sql in try await sql.raw("UPDATE items SET name = 'two' WHERE id = 2").run() }
        #expect(try await lookup.name(1) == "item 1", "a row from before the restore came back")

        // The count's row is gone: every lookup reads, and answers.
        try await database.write { sql in try await sql.raw("DELETE FROM table_changes WHERE name = 'items'").run() }
        let reads = lookup.readCount
        #expect(try await lookup.name(1) == "item 1")
        #expect(try await lookup.name(1) == "item 1")
        #expect(lookup.readCount == reads + 2)
    }

    @Test("a cache holds at most its capacity")
    func bounded() async throws {
        let items = try await Items.open(count: 5, capacity: 2)
        defer { Task { await items.close() } }
        let lookup = items.lookup
        for id in 1...5 {
            #expect(try await lookup.name(id) == "item \(id)")
            #expect(lookup.cache.count <= 2)
        }
        #expect(lookup.cache.count >= 1)
    }
}
