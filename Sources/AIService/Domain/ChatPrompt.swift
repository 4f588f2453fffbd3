import Foundation
import AIProviders
import Platform

/// Builds what a chat completion sends to the provider, and checks what the caller sent.
enum ChatPrompt {
    static let placeholder = "%question%"
    static let maxQuestionLength = 32_000
    static let maxMessages = 100
    static let maxMessageLength = 32_000
    static let maxNameLength = 64
    static let roles: Set<String> = ["system", "user", "assistant"]

    /// The chat model's turns, then the caller's messages, then the question in its template.
    static func messages(turns: [ChatTurn], template: String, history: [ChatMessage], question: String) -> [ChatMessage] {
        turns.map { ChatMessage(role: $0.key, content: $0.value) }
            + history
            + [ChatMessage(role: "user", content: fill(template: template, question: question))]
    }

    static func fill(template: String, question: String) -> String {
        if template.isEmpty { return question }
        if template.contains(placeholder) { return template.replacingOccurrences(of: placeholder, with: question) }
        return template + "\n" + question
    }

    static func check(question: String, history: [ChatMessage]) throws(DomainError) {
        var violations = Violations()
        if question.unicodeScalars.allSatisfy(\.properties.isWhitespace) {
            violations.add("question", "question must not be empty")
        } else if question.unicodeScalars.count > maxQuestionLength {
            violations.add("question", "question must be at most \(maxQuestionLength) characters long")
        }
        if history.count > maxMessages {
            violations.add("messages", "messages must have at most \(maxMessages) items")
        }
        for (index, message) in history.enumerated() {
            if !roles.contains(message.role) {
                violations.add("messages[\(index)].role", "messages[\(index)].role must be one of system, user, assistant")
            }
            if let name = message.name, name.unicodeScalars.count > maxNameLength {
                violations.add("messages[\(index)].name", "messages[\(index)].name must be at most \(maxNameLength) characters long")
            }
            if message.content.unicodeScalars.count > maxMessageLength {
                violations.add("messages[\(index)].content", "messages[\(index)].content must be at most \(maxMessageLength) characters long")
            }
        }
        try violations.throwIfAny()
    }
}
