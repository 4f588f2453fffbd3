import FluentKit
import Foundation
import Platform
import SQLKit

/// `ChatModelRepository` in the `chat_model` table (turns stored as JSON).
public struct SQLChatModelRepository: ChatModelRepository {
    private let database: ServiceDatabase

    public init(database: ServiceDatabase) {
        self.database = database
    }

    private static let columns: SQLQueryString =
        "id, user_id, provider, model, name, struct, question_tpl, status, created_at, updated_at"

    public func insert(_ model: ChatModel) async throws {
        let turns = try Self.encode(model.turns)
        do {
            try await database.write { sql in
                try await sql.raw("""
                    INSERT INTO chat_model (\(Self.columns)) VALUES (\(bind: model.id), \(bind: model.userId), \
                    \(bind: model.provider), \(bind: model.model), \(bind: model.name), \(bind: turns), \
                    \(bind: model.questionTemplate), \(bind: model.enabled ? 1 : 0), \(bind: model.createdAt.milliseconds), \
                    \(bind: model.updatedAt.milliseconds))
                    """).run()
            }
        } catch let error as any DatabaseError where error.isConstraintFailure {
            throw Self.nameTaken(model.name)
        }
    }

    public func find(id: String, userId: String) async throws -> ChatModel? {
        let sql = try await database.reads()
        guard let row = try await sql.raw("""
            SELECT \(Self.columns) FROM chat_model \
            WHERE id = \(bind: id) AND user_id = \(bind: userId) AND deleted_at IS NULL
            """).first() else { return nil }
        return try Self.decode(row)
    }

    public func update(id: String, userId: String, _ changes: ChatModelChanges, at date: Date) async throws -> Bool {
        // One UPDATE of the named columns only: concurrent changes to other fields survive.
        var sets: [SQLQueryString] = ["updated_at = \(bind: date.milliseconds)"]
        if let name = changes.name { sets.append("name = \(bind: name)") }
        if let turns = changes.turns { sets.append("struct = \(bind: try Self.encode(turns))") }
        if let template = changes.questionTemplate { sets.append("question_tpl = \(bind: template)") }
        do {
            return try await database.write { sql in
                try await !sql.raw("""
                    UPDATE chat_model SET \(sets.joined(separator: ", ")) \
                    WHERE id = \(bind: id) AND user_id = \(bind: userId) AND deleted_at IS NULL RETURNING id
                    """).all().isEmpty
            }
        } catch let error as any DatabaseError where error.isConstraintFailure {
            throw Self.nameTaken(changes.name ?? "")
        }
    }

    public func softDelete(id: String, userId: String, at date: Date) async throws -> Bool {
        try await database.write { sql in
            try await !sql.raw("""
                UPDATE chat_model SET deleted_at = \(bind: date.milliseconds), updated_at = \(bind: date.milliseconds) \
                WHERE id = \(bind: id) AND user_id = \(bind: userId) AND deleted_at IS NULL RETURNING id
                """).all().isEmpty
        }
    }

    public func list(userId: String, offset: Int, limit: Int) async throws -> (models: [ChatModel], total: Int) {
        let sql = try await database.reads()
        let count = try await sql.raw("""
            SELECT COUNT(*) AS n FROM chat_model WHERE user_id = \(bind: userId) AND deleted_at IS NULL
            """).first()
        let rows = try await sql.raw("""
            SELECT \(Self.columns) FROM chat_model WHERE user_id = \(bind: userId) AND deleted_at IS NULL \
            ORDER BY created_at DESC, id DESC LIMIT \(bind: limit) OFFSET \(bind: offset)
            """).all()
        return (try rows.map(Self.decode), try count?.decode(column: "n", as: Int.self) ?? 0)
    }

    private static func nameTaken(_ name: String) -> DomainError {
        DomainError(
            .alreadyExists, "you already have a chat model named \(name.quotedForMessage)",
            violations: [FieldViolation(property: "name", constraints: ["name must be unique among your chat models"])]
        )
    }

    private static func encode(_ turns: [ChatTurn]) throws -> String {
        String(decoding: try JSONEncoder().encode(turns), as: UTF8.self)
    }

    private static func decode(_ row: any SQLRow) throws -> ChatModel {
        let turnsJSON = try row.decode(column: "struct", as: String.self)
        return ChatModel(
            id: try row.decode(column: "id", as: String.self),
            userId: try row.decode(column: "user_id", as: String.self),
            provider: try row.decode(column: "provider", as: String.self),
            model: try row.decode(column: "model", as: String.self),
            name: try row.decode(column: "name", as: String.self),
            turns: try JSONDecoder().decode([ChatTurn].self, from: Data(turnsJSON.utf8)),
            questionTemplate: try row.decode(column: "question_tpl", as: String.self),
            enabled: try row.decode(column: "status", as: Int.self) == 1,
            createdAt: Date(milliseconds: try row.decode(column: "created_at", as: Int64.self)),
            updatedAt: Date(milliseconds: try row.decode(column: "updated_at", as: Int64.self))
        )
    }
}
