import AIProviders
import AISaaSProtos
import Foundation
import Platform

extension Grpc_Ai_V1_ChatModel {
    init(_ model: ChatModel) {
        self = .with {
            $0.id = model.id
            $0.provider = model.provider
            $0.model = model.model
            $0.name = model.name
            $0.struct = model.turns.map { turn in .with { $0.key = turn.key; $0.value = turn.value } }
            $0.questionTpl = model.questionTemplate
            $0.status = model.enabled ? .enable : .disable
            $0.userID = model.userId
            $0.createdAt = model.createdAt.millisecondsSince1970
            $0.updatedAt = model.updatedAt.millisecondsSince1970
        }
    }
}

extension Grpc_Ai_V1_Pagination {
    init<Item>(_ page: Page<Item>) {
        self = .with {
            $0.current = Int32(clamping: page.current)
            $0.pageSize = Int32(clamping: page.pageSize)
            $0.total = Int32(clamping: page.total)
        }
    }
}

extension Grpc_Ai_V1_ChatCompletionUsage {
    init(_ usage: TokenUsage) {
        self = .with {
            $0.promptTokens = Int64(usage.promptTokens)
            $0.completionTokens = Int64(usage.completionTokens)
            $0.totalTokens = Int64(usage.totalTokens)
        }
    }
}

extension Grpc_Ai_V1_CreateChatCompletionChoicesResponse {
    init(_ completion: ChatCompletion) {
        self = .with {
            $0.choices = completion.choices.map { choice in
                .with {
                    $0.index = Int32(clamping: choice.index)
                    $0.message = .with {
                        $0.role = choice.message.role
                        $0.content = choice.message.content
                        if let name = choice.message.name { $0.name = name }
                    }
                    if let reason = choice.finishReason { $0.finishReason = reason }
                }
            }
            if let usage = completion.usage { $0.usage = Grpc_Ai_V1_ChatCompletionUsage(usage) }
        }
    }
}

extension Grpc_Ai_V1_ChatCompletionChunk {
    init(_ delta: ChatCompletionDelta) {
        self = .with {
            $0.choices = delta.choices.map { choice in
                .with {
                    $0.index = Int32(clamping: choice.index)
                    $0.delta = .with {
                        if let role = choice.role { $0.role = role }
                        if let content = choice.content { $0.content = content }
                    }
                    if let reason = choice.finishReason { $0.finishReason = reason }
                }
            }
            if let usage = delta.usage { $0.usage = Grpc_Ai_V1_ChatCompletionUsage(usage) }
        }
    }
}

extension CompletionInput {
    init(_ request: Grpc_Ai_V1_CreateChatCompletionRequest) {
        self.init(
            chatModelId: request.hasChaModelID && !request.chaModelID.isEmpty ? request.chaModelID : nil,
            question: request.question,
            messages: request.messages.map {
                ChatMessage(role: $0.role, content: $0.content, name: $0.hasName ? $0.name : nil)
            }
        )
    }
}

extension Grpc_Ai_V1_UsageTotals {
    init(_ totals: UsageTotals) {
        self = .with {
            $0.key = totals.key
            $0.requests = Int64(totals.requests)
            $0.failures = Int64(totals.failures)
            $0.promptTokens = Int64(totals.promptTokens)
            $0.completionTokens = Int64(totals.completionTokens)
            $0.totalTokens = Int64(totals.totalTokens)
            $0.audioSeconds = totals.audioSeconds
            $0.characters = Int64(totals.characters)
            $0.cost = totals.cost
        }
    }
}

extension Grpc_Ai_V1_UsageRecord {
    init(_ record: UsageRecord) {
        self = .with {
            $0.id = record.id
            $0.userID = record.userId
            $0.chatModelID = record.chatModelId
            $0.provider = record.provider
            $0.model = record.model
            $0.kind = switch record.kind {
            case .chat: .chat
            case .stt: .stt
            case .tts: .tts
            case .embeddings: .embeddings
            }
            $0.promptTokens = Int64(record.consumption.promptTokens)
            $0.completionTokens = Int64(record.consumption.completionTokens)
            $0.totalTokens = Int64(record.consumption.totalTokens)
            $0.audioSeconds = record.consumption.audioSeconds
            $0.characters = Int64(record.consumption.characters)
            $0.cost = record.cost
            $0.requestID = record.requestId
            $0.latencyMs = Int64(record.latencyMs)
            $0.status = Int32(clamping: record.status)
            $0.error = record.error
            $0.accessKey = record.accessKey
            $0.apiKeyID = record.apiKeyId
            $0.createdAt = record.createdAt.millisecondsSince1970
        }
    }
}

extension Grpc_Ai_V1_Quota {
    init(_ quota: Quota) {
        self = .with {
            $0.userID = quota.userId
            if let budget = quota.tokenBudget { $0.tokenBudget = Int64(budget) }
            if let budget = quota.costBudget { $0.costBudget = budget }
            $0.tokensUsed = Int64(quota.tokensUsed)
            $0.costUsed = quota.costUsed
            $0.updatedAt = quota.updatedAt.millisecondsSince1970
        }
    }
}
