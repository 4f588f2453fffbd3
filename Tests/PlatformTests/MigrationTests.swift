import FluentKit
import Foundation
import Logging
import Platform
import SQLKit
import Synchronization
import Testing
import TestSupport

/// A migration that creates a table and adds a column, then fails while `failing` says so, as a
/// migration cut short by a killed process or a lost connection would.
private struct TwoStepMigration: AsyncMigration {
    let failing: Bool
    var name: String { "test-two-steps" }

    struct CutShort: Error {}

    func prepare(on database: any Database) async throws {
        try await database.schema("widgets").field("id", .int, .identifier(auto: false)).create()
        try await database.schema("widgets").field("colour", .string).update()
        if failing { throw CutShort() }
    }

    func revert(on database: any Database) async throws {
        try await database.schema("widgets").delete()
    }
}

@Suite("migrations")
struct MigrationTests {
    @Test("a migration that fails part way leaves nothing behind and runs whole at the next start", arguments: TestDatabaseKind.enabled)
    func failedMigrationRunsAgain(kind: TestDatabaseKind) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let location = try await kind.makeLocation(in: directory)
        await #expect(throws: TwoStepMigration.CutShort.self) {
            try await ServiceDatabase.using(location, migrations: [TwoStepMigration(failing: true)]) { _ in }
        }
        try await ServiceDatabase.using(location, migrations: [TwoStepMigration(failing: false)]) { database in
            try await database.write { sql in
                try await sql.raw("INSERT INTO widgets (id, colour) VALUES (1, 'teal')").run()
            }
        }
        // Recorded once: a third start runs nothing.
        try await ServiceDatabase.using(location, migrations: [TwoStepMigration(failing: true)]) { database in
            let colour = try await database.reads().raw("SELECT colour FROM widgets WHERE id = 1").first()?.decode(column: "colour", as: String.self)
            #expect(colour == "teal")
        }
    }
}

@Suite("unreachable databases")
struct UnreachableDatabaseTests {
    @Test("a database that does not answer at start is named, its password masked")
    func unreachableIsNamed() async throws {
        let database = try ServiceDatabase(location: .postgres(url: "postgres://app:s3cret-pw@127.0.0.1:1/users"), migrations: [], logger: Logger(label: "test"))
        do {
            try await database.migrate()
            Issue.record("migrated a database that is not there")
        } catch let error as DatabaseUnreachable {
            #expect(error.description.hasPrefix("cannot reach the database postgres://app:***@127.0.0.1:1/users"), "\(error)")
            #expect(!error.description.contains("s3cret-pw"))
        }
        await database.shutdown()
    }
}
