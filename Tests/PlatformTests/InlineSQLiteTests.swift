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

/// SQLite's reader and writer connections, which run their statements on the caller's thread.
@Suite("SQLite statements on the caller's thread")
struct InlineSQLiteTests {
    private func makeDatabase(_ directory: TemporaryDirectory) async throws -> ServiceDatabase {
        let database = try ServiceDatabase(
            location: .sqlite(path: "\(directory.path)/inline.sqlite"), migrations: [], logger: Logger(label: "test")
        )
        try await database.migrate()
        #expect(database.writesInline)
        return database
    }

    @Test("values of every type go in as binds and come back as they were, NULL included")
    func valuesRoundTrip() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try await makeDatabase(directory)
        defer { Task { await database.shutdown() } }
        let blob = ByteBuffer(bytes: [0, 1, 2, 255, 0])
        try await database.write { sql in
            try await sql.raw("CREATE TABLE things (i INTEGER, d REAL, t TEXT, b BLOB, n TEXT)").run()
            try await sql.raw("""
                INSERT INTO things (i, d, t, b, n) VALUES (\(bind: Int64.min), \(bind: 0.25), \(bind: "naïve 😀\u{0}tail"), \(bind: blob), \(bind: String?.none))
                """).run()
            try await sql.raw("INSERT INTO things (i, d, t, b, n) VALUES (\(bind: 7), \(bind: -1.5), \(bind: ""), \(bind: ByteBuffer()), \(bind: "set"))").run()
        }
        let rows = try await database.reads().raw("SELECT i, d, t, b, n FROM things ORDER BY rowid").all()
        #expect(rows.count == 2)
        #expect(try rows[0].decode(column: "i", as: Int64.self) == .min)
        #expect(try rows[0].decode(column: "d", as: Double.self) == 0.25)
        #expect(try rows[0].decode(column: "t", as: String.self) == "naïve 😀\u{0}tail")
        #expect(try rows[0].decode(column: "b", as: ByteBuffer.self) == blob)
        #expect(try rows[0].decodeNil(column: "n"))
        #expect(try rows[0].decode(column: "n", as: String?.self) == nil)
        #expect(try rows[1].decode(column: "t", as: String.self) == "")
        #expect(try rows[1].decode(column: "b", as: ByteBuffer.self).readableBytes == 0)
        #expect(try !rows[1].decodeNil(column: "b"), "an empty blob is a blob, not NULL")
        #expect(rows[0].allColumns == ["i", "d", "t", "b", "n"])
        #expect(!rows[0].contains(column: "missing"))
        #expect(throws: (any Error).self) { try rows[0].decode(column: "missing", as: Int.self) }
    }

    @Test("a broken constraint is a constraint failure, a bad statement a syntax error; the connection goes on")
    func errors() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try await makeDatabase(directory)
        defer { Task { await database.shutdown() } }
        try await database.write { sql in
            try await sql.raw("CREATE TABLE names (name TEXT PRIMARY KEY)").run()
            try await sql.raw("INSERT INTO names (name) VALUES ('taken')").run()
        }
        do {
            try await database.write { sql in try await sql.raw("INSERT INTO names (name) VALUES ('taken')").run() }
            Issue.record("a duplicate key went in")
        } catch let error as any DatabaseError {
            #expect(error.isConstraintFailure)
        }
        do {
            try await database.reads().raw("SELEKT 1").run()
            Issue.record("a bad statement ran")
        } catch let error as any DatabaseError {
            #expect(error.isSyntaxError)
        }
        // Too few binds for the statement's parameters.
        await #expect(throws: (any Error).self) {
            try await database.reads().raw("SELECT ? AS x").run()
        }
        let count = try await database.reads().raw("SELECT COUNT(*) AS n FROM names").first()?.decode(column: "n", as: Int.self)
        #expect(count == 1)
    }

    @Test("more distinct statements than the connection keeps prepared all run right")
    func manyStatements() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try await makeDatabase(directory)
        defer { Task { await database.shutdown() } }
        for round in 0..<2 {
            for value in 0..<300 {
                // A distinct text each: the statement cache fills, empties and fills again.
                let row = try await database.reads().raw("SELECT \(unsafeRaw: "\(value) + \(round)") AS v, \(bind: value) AS b").first()
                #expect(try row?.decode(column: "v", as: Int.self) == value + round)
                #expect(try row?.decode(column: "b", as: Int.self) == value)
            }
        }
    }

    @Test("a write that finds the file locked by another connection waits for it without holding its thread, then goes in", .timeLimit(.minutes(1)))
    func writeWaitsForAnotherConnectionsLock() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try await makeDatabase(directory)
        defer { Task { await database.shutdown() } }
        try await database.write { sql in try await sql.raw("CREATE TABLE items (id INTEGER PRIMARY KEY)").run() }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let loopStayedFree = Mutex(0)
        let (locked, lockTaken) = AsyncStream<Void>.makeStream()
        let (released, release) = AsyncStream<Void>.makeStream()
        try await withThrowingTaskGroup(of: Void.self) { group in
            // Fluent's pool connection takes the write lock and keeps it a while.
            group.addTask {
                try await database.database().transaction { fluent in
                    let session = try #require(fluent as? any SQLDatabase)
                    try await session.raw("INSERT INTO items (id) VALUES (1)").run()
                    lockTaken.yield()
                    for await _ in released { break }
                }
            }
            for await _ in locked { break }
            // The inline writer, on an event loop, meets the lock.
            group.addTask {
                try await withTaskExecutorPreference(EventLoopTaskExecutor.of(loop)) {
                    try await database.write { sql in try await sql.raw("INSERT INTO items (id) VALUES (2)").run() }
                }
            }
            // Meanwhile the loop keeps serving other work.
            for _ in 0..<10 {
                try await Task.sleep(for: .milliseconds(20))
                try await loop.submit { loopStayedFree.withLock { $0 += 1 } }.get()
            }
            release.yield()
            try await group.waitForAll()
        }
        #expect(loopStayedFree.withLock { $0 } == 10)
        let ids = try await database.reads().raw("SELECT id FROM items ORDER BY id").all().map { try $0.decode(column: "id", as: Int.self) }
        #expect(ids == [1, 2])
    }

    @Test("statements of a task preferring an event loop run on that loop's thread")
    func statementsRunOnTheCallersLoop() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try await makeDatabase(directory)
        defer { Task { await database.shutdown() } }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let onLoop = try await withTaskExecutorPreference(EventLoopTaskExecutor.of(loop)) {
            _ = try await database.reads().raw("SELECT 1 AS one").first()
            return loop.inEventLoop
        }
        #expect(onLoop)
    }

    @Test("a write from a cancelled task still commits: nothing on the path heeds cancellation, which group commits rely on")
    func cancelledCallerStillCommits() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try await makeDatabase(directory)
        defer { Task { await database.shutdown() } }
        try await database.write { sql in try await sql.raw("CREATE TABLE items (id INTEGER PRIMARY KEY)").run() }
        let writer = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await database.writeTransaction { sql in
                try await sql.raw("INSERT INTO items (id) VALUES (1)").run()
                try await sql.raw("INSERT INTO items (id) VALUES (2)").run()
            }
        }
        try await writer.value
        let count = try await database.reads().raw("SELECT COUNT(*) AS n FROM items").first()?.decode(column: "n", as: Int.self)
        #expect(count == 2)
    }

    @Test("the write-ahead log is checkpointed off the writer: many commits leave it bounded and lose nothing", .timeLimit(.minutes(2)))
    func logIsCheckpointed() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try await makeDatabase(directory)
        try await database.write { sql in try await sql.raw("CREATE TABLE items (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)").run() }
        // Each commit adds a page or two to the log: without checkpoints, 20,000 of them would
        // leave well over 80 MB in it.
        let commits = 20_000
        for id in 1...commits {
            try await database.write { sql in try await sql.raw("INSERT INTO items (id, payload) VALUES (\(bind: id), 'a usage record')").run() }
        }
        let count = try await database.reads().raw("SELECT COUNT(*) AS n FROM items").first()?.decode(column: "n", as: Int.self)
        #expect(count == commits)
        let log = try FileManager.default.attributesOfItem(atPath: "\(directory.path)/inline.sqlite-wal")[.size] as? Int ?? 0
        #expect(log > 0 && log < 16 << 20, "write-ahead log of \(log) bytes")
        await database.shutdown()
        let reopened = try await makeDatabase(directory)
        let again = try await reopened.reads().raw("SELECT COUNT(*) AS n FROM items").first()?.decode(column: "n", as: Int.self)
        #expect(again == commits)
        await reopened.shutdown()
    }
}
