import FluentKit
import Foundation
import Logging
import NIOCore
import NIOPosix
import Platform
import SQLKit
import Synchronization
import Testing
import TestSupport

@Suite("reads outside transactions")
struct ServiceDatabaseReadsTests {
    @Test("reads see every committed write at once, and cannot write", arguments: TestDatabaseKind.enabled)
    func readsSeeCommittedWrites(kind: TestDatabaseKind) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try ServiceDatabase(location: try await kind.makeLocation(in: directory), migrations: [], logger: Logger(label: "test"))
        do {
            try await database.migrate()
            let writer = try #require(database.database() as? any SQLDatabase)
            try await writer.raw("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").run()

            // Opened concurrently, used at once: every read gets an answer.
            let names = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<20 {
                    group.addTask { try await database.reads().raw("SELECT COUNT(*) AS n FROM items").first()?.decode(column: "n", as: Int.self) ?? -1 }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(names == Array(repeating: 0, count: 20))

            for index in 1...3 {
                try await writer.raw("INSERT INTO items (id, name) VALUES (\(bind: index), \(bind: "item \(index)"))").run()
                let row = try await database.reads().raw("SELECT name FROM items WHERE id = \(bind: index)").first()
                #expect(try row?.decode(column: "name", as: String.self) == "item \(index)")
            }
            try await writer.raw("UPDATE items SET name = 'renamed' WHERE id = 1").run()
            let renamed = try await database.reads().raw("SELECT name FROM items WHERE id = 1").first()
            #expect(try renamed?.decode(column: "name", as: String.self) == "renamed")

            if case .sqlite = kind {
                // SQLite's reader is a connection of its own, opened read-only.
                await #expect(throws: (any Error).self) {
                    try await database.reads().raw("INSERT INTO items (id, name) VALUES (9, 'nine')").run()
                }
                let count = try await writer.raw("SELECT COUNT(*) AS n FROM items").first()?.decode(column: "n", as: Int.self)
                #expect(count == 3)
            }
        } catch {
            // A test that fails must not leave its pools open.
            await database.shutdown()
            throw error
        }
        await database.shutdown()
        if case .sqlite = kind {
            await #expect(throws: (any Error).self) { try await database.reads().raw("SELECT 1").run() }
        }
    }

    @Test("a long scanning read leaves the caller's event loop free, sees committed writes and cannot write", arguments: TestDatabaseKind.enabled)
    func scanningReadsRunElsewhere(kind: TestDatabaseKind) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try ServiceDatabase(location: try await kind.makeLocation(in: directory), migrations: [], logger: Logger(label: "test"))
        do {
            try await database.migrate()
            try await database.write { sql in
                try await sql.raw("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").run()
                try await sql.raw("INSERT INTO items (id, name) VALUES (1, 'one'), (2, 'two')").run()
            }
            let count = try await database.scans().raw("SELECT COUNT(*) AS n FROM items").first()?.decode(column: "n", as: Int.self)
            #expect(count == 2)

            // A read that counts to three million, started from a task on an event loop: the loop
            // answers a job submitted meanwhile before that read is over.
            let loop = MultiThreadedEventLoopGroup.singleton.next()
            let progress = Mutex((started: false, finished: false))
            let report = Task(executorPreference: EventLoopTaskExecutor.of(loop)) {
                progress.withLock { $0.started = true }
                let row = try await database.scans().raw("""
                    WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT CAST(COUNT(*) AS BIGINT) AS n FROM c
                    """).first()
                progress.withLock { $0.finished = true }
                return try row?.decode(column: "n", as: Int.self)
            }
            while !progress.withLock({ $0.started }) { try await Task.sleep(for: .milliseconds(1)) }
            try await Task.sleep(for: .milliseconds(20))
            let finishedWhenLoopAnswered = try await loop.submit { progress.withLock { $0.finished } }.get()
            #expect(!finishedWhenLoopAnswered, "the event loop waited for the whole read")
            #expect(try await report.value == 3_000_000)

            if case .sqlite = kind {
                await #expect(throws: (any Error).self) {
                    try await database.scans().raw("INSERT INTO items (id, name) VALUES (9, 'nine')").run()
                }
            }
        } catch {
            await database.shutdown()
            throw error
        }
        await database.shutdown()
        if case .sqlite = kind {
            await #expect(throws: (any Error).self) { try await database.scans().raw("SELECT 1").run() }
        }
    }
}
