import AISaaSProtos
import Hummingbird
import Platform

/// `/ai/chat/model`: the caller's chat personas. The AI service scopes every call to the caller
/// (from the request's identity), so another user's model is simply not found.
struct ChatModelRoutes {
    let chatModels: any Grpc_Ai_V1_AiChatModelService.ClientProtocol

    func register(on authenticated: RouterGroup<GatewayRequestContext>) {
        authenticated.post("/ai/chat/model", use: create)
        authenticated.get("/ai/chat/model", use: list)
        authenticated.get("/ai/chat/model/{id}", use: get)
        authenticated.patch("/ai/chat/model/{id}", use: update)
        authenticated.delete("/ai/chat/model/{id}", use: delete)
    }

    /// At most this many `struct` items; the service applies the same rule, the gateway only stops
    /// absurd bodies early.
    static let maxStructItems = 50

    @Sendable func create(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        var body = try await JSONBody.read(request, context: context)
        let provider = body.string("provider", required: false)
        let model = body.string("model", required: false)
        let name = body.string("name", required: true)
        let items = body.stringObjects("struct", fields: ["key", "value"], maxCount: Self.maxStructItems)
        let template = body.string("questionTpl", required: false)
        try body.finish()
        let created = try await chatModels.createChatModel(.with {
            if let provider { $0.provider = provider }
            if let model { $0.model = model }
            $0.name = name ?? ""
            $0.struct = Self.structItems(items)
            if let template { $0.questionTpl = template }
        })
        return try ResponseBody.success(ChatModelView(created))
    }

    @Sendable func list(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let page = try PageQuery(request)
        let result = try await retryingWhenUnavailable {
            try await chatModels.getChatModelList(.with {
                $0.current = Int32(page.current)
                $0.pageSize = Int32(page.pageSize)
            })
        }
        return try ResponseBody.success(ListPage(
            results: result.results.map(ChatModelView.init),
            pagination: PageInfo(current: Int(result.pagination.current), pageSize: Int(result.pagination.pageSize), total: Int(result.pagination.total))
        ))
    }

    @Sendable func get(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let id = try Self.chatModelId(context)
        let model = try await retryingWhenUnavailable { try await chatModels.getChatModelById(.with { $0.id = id }) }
        return try ResponseBody.success(ChatModelView(model))
    }

    /// Changes the fields given (`null` is not given); `struct`, when given, replaces the whole
    /// list (`[]` clears it).
    @Sendable func update(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let id = try Self.chatModelId(context)
        var body = try await JSONBody.read(request, context: context)
        let name = body.string("name", required: false)
        let items = body.stringObjects("struct", fields: ["key", "value"], maxCount: Self.maxStructItems)
        let template = body.string("questionTpl", required: false)
        try body.finish()
        let replacesStruct = items != nil
        _ = try await chatModels.updateChatModel(.with {
            $0.id = id
            if let name { $0.name = name }
            $0.struct = Self.structItems(items)
            $0.replaceStruct = replacesStruct
            if let template { $0.questionTpl = template }
        })
        let updated = try await retryingWhenUnavailable { try await chatModels.getChatModelById(.with { $0.id = id }) }
        return try ResponseBody.success(ChatModelView(updated))
    }

    @Sendable func delete(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let id = try Self.chatModelId(context)
        _ = try await chatModels.deleteChatModel(.with { $0.id = id })
        return try ResponseBody.empty()
    }

    private static func chatModelId(_ context: GatewayRequestContext) throws -> String {
        try Identifier.path("id", context, notFound: "chat model")
    }

    private static func structItems(_ items: [[String: String]]?) -> [Grpc_Ai_V1_ChatModelStructItem] {
        (items ?? []).map { item in
            .with {
                $0.key = item["key"] ?? ""
                $0.value = item["value"] ?? ""
            }
        }
    }
}
