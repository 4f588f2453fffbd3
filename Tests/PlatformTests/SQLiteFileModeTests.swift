import Foundation
import Logging
import Platform
import SQLKit
import Testing
import TestSupport

@Suite("SQLite files")
struct SQLiteFileModeTests {
    private func mode(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return try #require(attributes[.posixPermissions] as? Int) & 0o777
    }

    @Test("a new database, its WAL and a directory made for it are readable by the process's user alone")
    func newFilesArePrivate() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let folder = "\(directory.path)/data"
        let path = "\(folder)/service.sqlite"
        let database = try ServiceDatabase(location: .sqlite(path: path), migrations: [], logger: Logger(label: "test"))
        do {
            try await database.migrate()
            let writer = try #require(database.database() as? any SQLDatabase)
            try await writer.raw("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").run()
            try await writer.raw("INSERT INTO items (id, name) VALUES (1, 'one')").run()
            #expect(try mode(folder) == 0o700)
            #expect(try mode(path) == 0o600)
            for companion in ["-wal", "-shm"] where FileManager.default.fileExists(atPath: path + companion) {
                #expect(try mode(path + companion) == 0o600, "\(companion)")
            }
            #expect(FileManager.default.fileExists(atPath: path + "-wal"))
        } catch {
            await database.shutdown()
            throw error
        }
        await database.shutdown()
    }

    @Test("an existing database keeps its mode and its rows; one others can read is warned about")
    func existingFileKeepsItsMode() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = "\(directory.path)/service.sqlite"
        let first = try ServiceDatabase(location: .sqlite(path: path), migrations: [], logger: Logger(label: "test"))
        do {
            let writer = try #require(first.database() as? any SQLDatabase)
            try await writer.raw("CREATE TABLE items (id INTEGER PRIMARY KEY)").run()
            try await writer.raw("INSERT INTO items (id) VALUES (7)").run()
        } catch {
            await first.shutdown()
            throw error
        }
        await first.shutdown()
        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: path)

        let recorder = LogRecorder()
        let second = try ServiceDatabase(location: .sqlite(path: path), migrations: [], logger: recorder.logger())
        do {
            let reader = try #require(second.database() as? any SQLDatabase)
            let id = try await reader.raw("SELECT id FROM items").first()?.decode(column: "id", as: Int.self)
            #expect(id == 7)
            #expect(try mode(path) == 0o640)
            #expect(recorder.all.contains { $0.hasPrefix("warning") && $0.contains("readable by others") && $0.contains("640") }, "\(recorder.all)")
        } catch {
            await second.shutdown()
            throw error
        }
        await second.shutdown()

        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        let quiet = LogRecorder()
        let third = try ServiceDatabase(location: .sqlite(path: path), migrations: [], logger: quiet.logger())
        await third.shutdown()
        #expect(!quiet.all.contains { $0.contains("readable by others") })
    }
}
