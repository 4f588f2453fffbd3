import FluentKit
import Foundation
import Logging
import Platform
import SQLKit
import Synchronization
import Testing
import TestSupport

@Suite("writes around Fluent")
struct ServiceDatabaseWritesTests {
    @Test("concurrent transactions take turns and lose nothing; a failed one leaves nothing behind", arguments: TestDatabaseKind.enabled)
    func transactionsTakeTurns(kind: TestDatabaseKind) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try await ServiceDatabase.using(try await kind.makeLocation(in: directory)) { database in
            try await database.write { sql in
                try await sql.raw("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)").run()
                try await sql.raw("INSERT INTO counter (id, n) VALUES (1, 0)").run()
            }
            // Read, then write what was read plus one: lost updates would show if two interleaved.
            // Eight writers at a time, five turns each: no more than one event loop's share of the
            // PostgreSQL pool, so that a loaded machine makes them slow, never out of connections.
            try await withThrowingDiscardingTaskGroup { group in
                for _ in 0..<8 {
                    group.addTask {
                        for _ in 0..<5 {
                            try await database.writeTransaction { sql in
                                // PostgreSQL's transactions run side by side: the row lock makes them take turns.
                                let lockRow: SQLQueryString = sql.dialect.name == "postgresql" ? " FOR UPDATE" : ""
                                let n = try await sql.raw("SELECT n FROM counter WHERE id = 1\(lockRow)").first()?.decode(column: "n", as: Int.self) ?? -1
                                try await sql.raw("UPDATE counter SET n = \(bind: n + 1) WHERE id = 1").run()
                            }
                        }
                    }
                }
            }
            struct Failure: Error {}
            await #expect(throws: Failure.self) {
                try await database.writeTransaction { sql in
                    try await sql.raw("UPDATE counter SET n = 1000 WHERE id = 1").run()
                    throw Failure()
                }
            }
            let n = try await database.reads().raw("SELECT n FROM counter WHERE id = 1").first()?.decode(column: "n", as: Int.self)
            #expect(n == 40)
            // Plain writes still go through after a rolled-back transaction.
            try await database.write { sql in try await sql.raw("UPDATE counter SET n = n + 1 WHERE id = 1").run() }
            #expect(try await database.reads().raw("SELECT n FROM counter WHERE id = 1").first()?.decode(column: "n", as: Int.self) == 41)
        }
    }

    @Test("work handed to beforeShutdown runs while the database still answers, once", arguments: TestDatabaseKind.enabled)
    func hooksRunBeforeClosing(kind: TestDatabaseKind) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let location = try await kind.makeLocation(in: directory)
        let database = try ServiceDatabase(location: location, migrations: [], logger: Logger(label: "test"))
        try await database.migrate()
        try await database.write { sql in try await sql.raw("CREATE TABLE kept (id INTEGER PRIMARY KEY)").run() }
        let runs = Mutex(0)
        database.beforeShutdown {
            runs.withLock { $0 += 1 }
            try? await database.write { sql in try await sql.raw("INSERT INTO kept (id) VALUES (1)").run() }
        }
        await database.shutdown()
        await database.shutdown()
        #expect(runs.withLock { $0 } == 1)
        try await ServiceDatabase.using(location) { reopened in
            let count = try await reopened.reads().raw("SELECT COUNT(*) AS n FROM kept").first()?.decode(column: "n", as: Int.self)
            #expect(count == 1, "the hook's write went in before the database closed")
        }
    }

    @Test("the lock lets one holder in at a time, in arrival order")
    func serialLock() async throws {
        let lock = AsyncSerialLock()
        let probe = LockProbe()
        let (held, release) = AsyncStream.makeStream(of: Void.self)
        let (taken, tookIt) = AsyncStream.makeStream(of: Void.self)
        let holder = Task {
            await lock.withLock {
                tookIt.yield()
                for await _ in held {}
            }
        }
        for await _ in taken { break }
        try await withThrowingDiscardingTaskGroup { group in
            // Queued while the lock is held, in a known order.
            for index in 0..<5 {
                group.addTask {
                    await lock.withLock {
                        probe.enter(index)
                        try? await Task.sleep(for: .milliseconds(5))
                        probe.leave()
                    }
                }
                // In line before the next one is started.
                while lock.waitingCount < index + 1 { try await Task.sleep(for: .milliseconds(1)) }
            }
            #expect(probe.state.withLock { $0.order }.isEmpty, "nobody passes while the lock is held")
            release.finish()
        }
        await holder.value
        #expect(probe.state.withLock { $0.most } == 1)
        #expect(probe.state.withLock { $0.order } == [0, 1, 2, 3, 4])
    }
}

/// Who held the lock, and how many at once.
private final class LockProbe: Sendable {
    struct State {
        var inside = 0
        var most = 0
        var order: [Int] = []
    }

    let state = Mutex(State())

    func enter(_ index: Int) {
        state.withLock { state in
            state.inside += 1
            state.most = max(state.most, state.inside)
            state.order.append(index)
        }
    }

    func leave() {
        state.withLock { $0.inside -= 1 }
    }
}
