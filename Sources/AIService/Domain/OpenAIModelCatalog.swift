import AIProviders
import Foundation
import Platform

/// What a `model` of the OpenAI-compatible API stands for.
struct ResolvedModel: Sendable {
    var provider: any AIProvider
    /// The provider's own name for the model.
    var model: String
    /// Set when `model` named one of the caller's chat models.
    var chatModel: ChatModel?
}

/// One entry of `/v1/models`.
public struct ModelListing: Sendable, Equatable {
    public var id: String
    public var ownedBy: String
    public var created: Date
}

/// The models the OpenAI-compatible API offers: each provider's exposed models (by name, or as
/// `provider/name`) and the caller's chat models (by id).
struct OpenAIModelCatalog: Sendable {
    let providers: AIProviderDirectory
    let chatModels: any ChatModelRepository
    /// What `/v1/models` gives as the provider models' `created`.
    let listedSince: Date

    static let maxChatModelsListed = 1000

    /// Providers in the order a bare model name is looked up: the default first, then by name.
    private var providersInOrder: [any AIProvider] {
        let defaultName = providers.effectiveDefaultName
        return providers.providers.values.sorted { lhs, rhs in
            if (lhs.name == defaultName) != (rhs.name == defaultName) { return lhs.name == defaultName }
            return lhs.name < rhs.name
        }
    }

    static func notFound(_ model: String) -> DomainError {
        DomainError(
            .notFound, "The model \(model.quotedForMessage) does not exist or you do not have access to it.",
            violations: [FieldViolation(property: "model", constraints: ["model must be one of GET /v1/models"])],
            reason: ErrorReason.modelNotFound.rawValue
        )
    }

    static func notAllowed(_ model: String) -> DomainError {
        DomainError(
            .permissionDenied, "This API key may not use the model \(model.quotedForMessage).",
            violations: [FieldViolation(property: "model", constraints: ["model must be one the API key allows"])],
            reason: ErrorReason.modelNotAllowed.rawValue
        )
    }

    /// Resolves `name` for the caller; chat models only when `chatModelsAllowed` (chat completions).
    /// Throws not found for anything else, and permission denied when `allowed` (an API key's
    /// allowlist, empty for every model) leaves it out.
    func resolve(_ name: String, caller: Caller, allowed: [String], chatModelsAllowed: Bool) async throws -> ResolvedModel {
        if providers.isEmpty { throw AIProviderDirectory.notConfigured }
        let resolved = try await find(name, caller: caller, chatModelsAllowed: chatModelsAllowed)
        guard let resolved else { throw Self.notFound(name) }
        guard Self.isAllowed(name: name, resolved, allowed: allowed) else { throw Self.notAllowed(name) }
        return resolved
    }

    private func find(_ name: String, caller: Caller, chatModelsAllowed: Bool) async throws -> ResolvedModel? {
        if let slash = name.firstIndex(of: "/") {
            let providerName = String(name[..<slash]), model = String(name[name.index(after: slash)...])
            if let provider = providers.providers[providerName], provider.defaults.exposed.contains(model) {
                return ResolvedModel(provider: provider, model: model)
            }
        }
        if let provider = providersInOrder.first(where: { $0.defaults.exposed.contains(name) }) {
            return ResolvedModel(provider: provider, model: name)
        }
        guard chatModelsAllowed, IdentifierRule.isPlausible(name),
              let chatModel = try await chatModels.find(id: name, userId: caller.userId), chatModel.enabled else {
            return nil
        }
        return ResolvedModel(provider: try ChatModelManager.offeredProvider(for: chatModel, in: providers), model: chatModel.model, chatModel: chatModel)
    }

    /// A model is allowed when the list names it as the caller wrote it, as `provider/model`, or
    /// (for a chat model) by its id.
    static func isAllowed(name: String, _ resolved: ResolvedModel, allowed: [String]) -> Bool {
        if allowed.isEmpty { return true }
        let names: Set<String> = resolved.chatModel.map { [name, $0.id] } ?? [name, resolved.model, "\(resolved.provider.name)/\(resolved.model)"]
        return allowed.contains(where: names.contains)
    }

    /// Everything `name` may be: the bare name for the first provider exposing it, `provider/name`
    /// for the ones it shadows, then the caller's enabled chat models, newest first.
    func list(caller: Caller, allowed: [String]) async throws -> [ModelListing] {
        var listings: [ModelListing] = []
        var taken = Set<String>()
        for provider in providersInOrder {
            for model in provider.defaults.exposed {
                let id = taken.insert(model).inserted ? model : "\(provider.name)/\(model)"
                let resolved = ResolvedModel(provider: provider, model: model)
                if Self.isAllowed(name: id, resolved, allowed: allowed) {
                    listings.append(ModelListing(id: id, ownedBy: provider.name, created: listedSince))
                }
            }
        }
        let (models, _) = try await chatModels.list(userId: caller.userId, offset: 0, limit: Self.maxChatModelsListed)
        for chatModel in models where chatModel.enabled {
            // Only those that may be used now (their provider and model still offered).
            guard let provider = providers.providers[chatModel.provider], ChatModelManager.offers(provider.defaults, chatModel.model) else { continue }
            let resolved = ResolvedModel(provider: provider, model: chatModel.model, chatModel: chatModel)
            if Self.isAllowed(name: chatModel.id, resolved, allowed: allowed) {
                listings.append(ModelListing(id: chatModel.id, ownedBy: "user", created: chatModel.createdAt))
            }
        }
        return listings
    }
}
