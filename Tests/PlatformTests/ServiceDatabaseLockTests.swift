import FluentKit
import Foundation
import Logging
import Platform
import SQLKit
import Testing
import TestSupport

@Suite("SQLite locking")
struct ServiceDatabaseLockTests {
    /// Two files, each opened by two databases of this process (as replicas in the tests are).
    /// On each file one database holds the write lock in a transaction while the other waits
    /// for it; the transactions' next statements must still run. With SQLite work on a shared
    /// two-thread pool, the two waiters took both threads and the transactions never finished.
    @Test(.timeLimit(.minutes(1)))
    func transactionsFinishWhileOtherDatabasesWaitForTheirLocks() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let logger = Logger(label: "test")
        var pairs: [(holder: ServiceDatabase, waiter: ServiceDatabase)] = []
        for file in ["one", "two"] {
            let location = DatabaseLocation.sqlite(path: "\(directory.path)/\(file).sqlite")
            let holder = try ServiceDatabase(location: location, migrations: [], logger: logger)
            let waiter = try ServiceDatabase(location: location, migrations: [], logger: logger)
            try await holder.migrate()
            try await waiter.migrate()
            try await sql(holder).raw("CREATE TABLE items (id INTEGER PRIMARY KEY)").run()
            pairs.append((holder, waiter))
        }

        let releases = pairs.map { _ in AsyncStream<Void>.makeStream() }
        let (locked, lockTaken) = AsyncStream<Void>.makeStream()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (pair, (released, _)) in zip(pairs, releases) {
                let holder = pair.holder
                group.addTask {
                    try await holder.database().transaction { database in
                        try await sql(database).raw("INSERT INTO items (id) VALUES (1)").run()
                        lockTaken.yield()
                        for await _ in released { break }
                        try await sql(database).raw("INSERT INTO items (id) VALUES (2)").run()
                    }
                }
            }
            var taken = 0
            for await _ in locked {
                taken += 1
                if taken == pairs.count { break }
            }
            for pair in pairs {
                let waiter = pair.waiter
                group.addTask { try await sql(waiter).raw("INSERT INTO items (id) VALUES (3)").run() }
            }
            // Let the waiters reach the lock (ordering only: any interleaving must finish).
            try await Task.sleep(for: .milliseconds(200))
            for (_, release) in releases { release.yield() }
            try await group.waitForAll()
        }
        for pair in pairs {
            let rows = try await sql(pair.waiter).raw("SELECT id FROM items ORDER BY id").all()
            #expect(try rows.map { try $0.decode(column: "id", as: Int.self) } == [1, 2, 3])
            await pair.holder.shutdown()
            await pair.waiter.shutdown()
        }
    }
}

private func sql(_ database: ServiceDatabase) throws -> any SQLDatabase {
    try sql(database.database())
}

private func sql(_ database: any Database) throws -> any SQLDatabase {
    guard let sql = database as? any SQLDatabase else { throw DomainError(.internal, "not SQL") }
    return sql
}
