import Foundation

/// Where chat models are kept. Every lookup is scoped to an owner and skips deleted rows.
public protocol ChatModelRepository: Sendable {
    /// Throws `.alreadyExists` when the owner already has an undeleted model of that name.
    func insert(_ model: ChatModel) async throws
    func find(id: String, userId: String) async throws -> ChatModel?
    /// Replaces the given fields; false when no undeleted model of that owner has the id.
    func update(id: String, userId: String, _ changes: ChatModelChanges, at date: Date) async throws -> Bool
    func softDelete(id: String, userId: String, at date: Date) async throws -> Bool
    /// Newest first.
    func list(userId: String, offset: Int, limit: Int) async throws -> (models: [ChatModel], total: Int)
}
