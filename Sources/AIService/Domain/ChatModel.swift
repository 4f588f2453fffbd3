import Foundation
import Platform

/// One example turn of a chat model: a chat role and its text.
public struct ChatTurn: Sendable, Equatable, Codable {
    public var key: String
    public var value: String

    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }
}

/// A chat persona a user designed: provider and model, example turns and a question template.
public struct ChatModel: Sendable, Equatable {
    public var id: String
    public var userId: String
    public var provider: String
    public var model: String
    public var name: String
    public var turns: [ChatTurn]
    public var questionTemplate: String
    public var enabled: Bool
    public var createdAt: Date
    public var updatedAt: Date
}

/// What a caller may set when creating a chat model; nil means "use the default".
public struct ChatModelDraft: Sendable {
    public var provider: String?
    public var model: String?
    public var name: String
    public var turns: [ChatTurn]
    public var questionTemplate: String?

    public init(provider: String? = nil, model: String? = nil, name: String, turns: [ChatTurn] = [], questionTemplate: String? = nil) {
        self.provider = provider
        self.model = model
        self.name = name
        self.turns = turns
        self.questionTemplate = questionTemplate
    }
}

/// Fields an update replaces; nil leaves a field as it is. `turns` nil keeps the turns.
public struct ChatModelChanges: Sendable {
    public var name: String?
    public var turns: [ChatTurn]?
    public var questionTemplate: String?

    public init(name: String? = nil, turns: [ChatTurn]? = nil, questionTemplate: String? = nil) {
        self.name = name
        self.turns = turns
        self.questionTemplate = questionTemplate
    }
}

/// The rules a chat model obeys, shared by create and update.
enum ChatModelRules {
    static let nameLength = 1...50
    static let maxTurns = 50
    static let maxTemplateLength = 4_000
    static let maxTurnLength = 32_000
    static let modelLength = 1...200
    static let roles: Set<String> = ["system", "user", "assistant"]

    static func checkName(_ name: String, into violations: inout Violations) {
        violations.checkLength("name", name, nameLength)
        violations.checkDisplayName("name", name)
    }

    static func checkTurns(_ turns: [ChatTurn], into violations: inout Violations) {
        if turns.count > maxTurns {
            violations.add("struct", "struct must have at most \(maxTurns) items")
        }
        for (index, turn) in turns.enumerated() {
            if !roles.contains(turn.key) {
                violations.add("struct[\(index)].key", "struct[\(index)].key must be one of system, user, assistant")
            }
            if turn.value.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                violations.add("struct[\(index)].value", "struct[\(index)].value must not be empty")
            } else if turn.value.unicodeScalars.count > maxTurnLength {
                violations.add("struct[\(index)].value", "struct[\(index)].value must be at most \(maxTurnLength) characters long")
            }
        }
    }

    static func checkTemplate(_ template: String?, into violations: inout Violations) {
        if let template, template.unicodeScalars.count > maxTemplateLength {
            violations.add("questionTpl", "questionTpl must be at most \(maxTemplateLength) characters long")
        }
    }
}
