import AISaaSProtos

/// A chat model as the HTTP API shows it. `status`: 0 disabled, 1 enabled; times in milliseconds
/// since the epoch.
struct ChatModelView: Encodable {
    struct Item: Encodable {
        let key: String
        let value: String
    }

    let id: String
    let provider: String
    let model: String
    let name: String
    let `struct`: [Item]
    let questionTpl: String
    let status: Int
    let userId: String
    let createdAt: Int64
    let updatedAt: Int64

    init(_ model: Grpc_Ai_V1_ChatModel) {
        id = model.id
        provider = model.provider
        self.model = model.model
        name = model.name
        `struct` = model.struct.map { Item(key: $0.key, value: $0.value) }
        questionTpl = model.questionTpl
        status = model.status.rawValue
        userId = model.userID
        createdAt = Int64(model.createdAt)
        updatedAt = Int64(model.updatedAt)
    }
}

struct MessageView: Encodable {
    let role: String?
    let content: String?
    let name: String?

    init(_ message: Grpc_Ai_V1_ChatCompletionRequestMessage) {
        role = message.hasRole ? message.role : nil
        content = message.hasContent ? message.content : nil
        name = message.hasName ? message.name : nil
    }
}

struct UsageView: Encodable {
    let promptTokens: Int64
    let completionTokens: Int64
    let totalTokens: Int64

    init(_ usage: Grpc_Ai_V1_ChatCompletionUsage) {
        promptTokens = usage.promptTokens
        completionTokens = usage.completionTokens
        totalTokens = usage.totalTokens
    }

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", totalTokens = "total_tokens"
    }
}

/// A non-streamed completion: `{choices: [{index, message, finish_reason}], usage}`, the shape of
/// the original system (snake case inside, as OpenAI clients expect).
struct CompletionView: Encodable {
    struct Choice: Encodable {
        let index: Int32
        let message: MessageView?
        let finishReason: String?

        enum CodingKeys: String, CodingKey { case index, message, finishReason = "finish_reason" }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(index, forKey: .index)
            try container.encode(message, forKey: .message)
            try container.encode(finishReason, forKey: .finishReason)
        }
    }

    let choices: [Choice]
    let usage: UsageView?

    init(_ response: Grpc_Ai_V1_CreateChatCompletionChoicesResponse) {
        choices = response.choices.map {
            Choice(
                index: $0.hasIndex ? $0.index : 0,
                message: $0.hasMessage ? MessageView($0.message) : nil,
                finishReason: $0.hasFinishReason ? $0.finishReason : nil
            )
        }
        usage = response.hasUsage ? UsageView(response.usage) : nil
    }
}

/// One server-sent event of a streamed completion, shaped like OpenAI's `chat.completion.chunk`.
struct CompletionChunkView: Encodable {
    struct Choice: Encodable {
        let index: Int32
        let delta: MessageView
        let finishReason: String?

        enum CodingKeys: String, CodingKey { case index, delta, finishReason = "finish_reason" }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(index, forKey: .index)
            try container.encode(delta, forKey: .delta)
            try container.encode(finishReason, forKey: .finishReason)
        }
    }

    let choices: [Choice]
    let usage: UsageView?

    init(_ chunk: Grpc_Ai_V1_ChatCompletionChunk) {
        choices = chunk.choices.map {
            Choice(index: $0.index, delta: MessageView($0.delta), finishReason: $0.hasFinishReason ? $0.finishReason : nil)
        }
        usage = chunk.hasUsage ? UsageView(chunk.usage) : nil
    }
}

struct TranscriptionView: Encodable {
    let text: String
}

struct UsageTotalsView: Encodable {
    let key: String
    let requests: Int64
    let failures: Int64
    let promptTokens: Int64
    let completionTokens: Int64
    let totalTokens: Int64
    let audioSeconds: Double
    let characters: Int64
    let cost: Double

    init(_ totals: Grpc_Ai_V1_UsageTotals) {
        key = totals.key
        requests = totals.requests
        failures = totals.failures
        promptTokens = totals.promptTokens
        completionTokens = totals.completionTokens
        totalTokens = totals.totalTokens
        audioSeconds = totals.audioSeconds
        characters = totals.characters
        cost = totals.cost
    }
}

struct UsageRecordView: Encodable {
    let id: String
    let userId: String
    let accessKey: String
    /// The API key of a /v1 call.
    let apiKeyId: String?
    let chatModelId: String?
    let provider: String
    let model: String
    let kind: String
    let promptTokens: Int64
    let completionTokens: Int64
    let totalTokens: Int64
    let audioSeconds: Double
    let characters: Int64
    let cost: Double
    let requestId: String
    let latencyMs: Int64
    let status: Int32
    let error: String?
    let createdAt: Int64

    init(_ record: Grpc_Ai_V1_UsageRecord) {
        id = record.id
        userId = record.userID
        accessKey = record.accessKey
        apiKeyId = record.apiKeyID.isEmpty ? nil : record.apiKeyID
        chatModelId = record.chatModelID.isEmpty ? nil : record.chatModelID
        provider = record.provider
        model = record.model
        kind = switch record.kind {
        case .stt: "stt"
        case .tts: "tts"
        case .embeddings: "embeddings"
        default: "chat"
        }
        promptTokens = record.promptTokens
        completionTokens = record.completionTokens
        totalTokens = record.totalTokens
        audioSeconds = record.audioSeconds
        characters = record.characters
        cost = record.cost
        requestId = record.requestID
        latencyMs = record.latencyMs
        status = record.status
        error = record.error.isEmpty ? nil : record.error
        createdAt = Int64(record.createdAt)
    }
}

struct UsageReportView: Encodable {
    let total: UsageTotalsView
    let byDay: [UsageTotalsView]
    let byModel: [UsageTotalsView]
    let results: [UsageRecordView]
    let pagination: PageInfo

    init(_ report: Grpc_Ai_V1_UsageReport) {
        total = UsageTotalsView(report.total)
        byDay = report.byDay.map(UsageTotalsView.init)
        byModel = report.byModel.map(UsageTotalsView.init)
        results = report.records.map(UsageRecordView.init)
        pagination = PageInfo(
            current: Int(report.pagination.current), pageSize: Int(report.pagination.pageSize), total: Int(report.pagination.total)
        )
    }
}

/// A user's budget: `null` budgets are unlimited.
struct QuotaView: Encodable {
    let userId: String
    let tokenBudget: Int64?
    let costBudget: Double?
    let tokensUsed: Int64
    let costUsed: Double
    let updatedAt: Int64

    init(_ quota: Grpc_Ai_V1_Quota) {
        userId = quota.userID
        tokenBudget = quota.hasTokenBudget ? quota.tokenBudget : nil
        costBudget = quota.hasCostBudget ? quota.costBudget : nil
        tokensUsed = quota.tokensUsed
        costUsed = quota.costUsed
        updatedAt = Int64(quota.updatedAt)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(userId, forKey: .userId)
        try container.encode(tokenBudget, forKey: .tokenBudget)
        try container.encode(costBudget, forKey: .costBudget)
        try container.encode(tokensUsed, forKey: .tokensUsed)
        try container.encode(costUsed, forKey: .costUsed)
        try container.encode(updatedAt, forKey: .updatedAt)
    }

    enum CodingKeys: String, CodingKey { case userId, tokenBudget, costBudget, tokensUsed, costUsed, updatedAt }
}
