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
            if let providerName, let provider = providers.providers[providerName], !Self.offers(provider.defaults, model) {
                let offered = ([provider.defaults.chat] + provider.defaults.exposed).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
                violations.add("model", "model must be one of the models \(providerName.quotedForMessage) offers: \(offered.prefix(20).joined(separator: ", "))")
            }
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

    /// Whether a provider offers `model` for chat: its chat model or one the operator lists for it
    /// (`AI_PROVIDER_<NAME>_MODELS`). A chat model names no other: customers reach only what the
    /// operator offers (and prices).
    static func offers(_ defaults: ProviderModels, _ model: String) -> Bool {
        model == defaults.chat || defaults.exposed.contains(model)
    }

    /// The chat model's provider, if it and the chat model's model may be used now: refused if
    /// the operator has since removed either.
    static func offeredProvider(for chatModel: ChatModel, in providers: AIProviderDirectory) throws(DomainError) -> any AIProvider {
        guard let provider = providers.providers[chatModel.provider] else {
            throw DomainError(.failedPrecondition, "the chat model's provider \(chatModel.provider.quotedForMessage) is not configured any more")
        }
        guard offers(provider.defaults, chatModel.model) else {
            throw DomainError(
                .failedPrecondition,
                "the chat model's model \(chatModel.model.quotedForMessage) is not offered by \(chatModel.provider.quotedForMessage) any more"
            )
        }
        return provider
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
