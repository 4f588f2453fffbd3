import AIProviders
import Foundation
import Platform

/// Chat model CRUD for one caller at a time. Another user's model is "not found", never
/// "forbidden", so ids cannot be probed.
public struct ChatModelManager: Sendable {
    let repository: any ChatModelRepository
    let providers: AIProviderDirectory

    public init(repository: any ChatModelRepository, providers: AIProviderDirectory) {
        self.repository = repository
        self.providers = providers
    }

    public func create(_ draft: ChatModelDraft, userId: String) async throws -> ChatModel {
        var violations = Violations()
        ChatModelRules.checkName(draft.name, into: &violations)
        ChatModelRules.checkTurns(draft.turns, into: &violations)
        ChatModelRules.checkTemplate(draft.questionTemplate, into: &violations)
        let providerName = draft.provider ?? providers.effectiveDefaultName
        var model = draft.model
        if let providerName, let provider = providers.providers[providerName] {
            model = model ?? provider.defaults.chat
        } else if providers.isEmpty {
            violations.add("provider", "provider must be a configured AI provider, and none is configured (AI_PROVIDERS)")
        } else {
            let names = providers.providers.keys.sorted().joined(separator: ", ")
            violations.add("provider", "provider must be one of the configured AI providers: \(names)")
        }
        if let model, model.trimmingCharacters(in: .whitespaces).isEmpty {
            violations.add("model", "model must not be empty")
        } else if let model {
            violations.checkLength("model", model, ChatModelRules.modelLength)
        }
        try violations.throwIfAny()
        let now = Date()
        let created = ChatModel(
            id: SortableID.make(at: now), userId: userId, provider: providerName ?? "", model: model ?? "",
            name: draft.name, turns: draft.turns, questionTemplate: draft.questionTemplate ?? "",
            enabled: true, createdAt: now, updatedAt: now
        )
        try await repository.insert(created)
        return created
    }

    public func get(id: String, userId: String) async throws -> ChatModel {
        guard let model = try await repository.find(id: id, userId: userId) else { throw Self.notFound(id) }
        return model
    }

    public func update(id: String, userId: String, _ changes: ChatModelChanges) async throws {
        var violations = Violations()
        if let name = changes.name { ChatModelRules.checkName(name, into: &violations) }
        if let turns = changes.turns { ChatModelRules.checkTurns(turns, into: &violations) }
        ChatModelRules.checkTemplate(changes.questionTemplate, into: &violations)
        try violations.throwIfAny()
        guard try await repository.update(id: id, userId: userId, changes, at: Date()) else { throw Self.notFound(id) }
    }

    public func delete(id: String, userId: String) async throws {
        guard try await repository.softDelete(id: id, userId: userId, at: Date()) else { throw Self.notFound(id) }
    }

    public func list(userId: String, current: Int?, pageSize: Int?) async throws -> Page<ChatModel> {
        let page = try PageRequest.check(current: current, pageSize: pageSize)
        let (models, total) = try await repository.list(userId: userId, offset: page.offset, limit: page.pageSize)
        return Page(items: models, current: page.current, pageSize: page.pageSize, total: total)
    }

    static func notFound(_ id: String) -> DomainError { .notFound("chat model \(id.quotedForMessage) not found") }
}
