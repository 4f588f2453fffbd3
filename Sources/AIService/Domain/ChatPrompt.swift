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
    /// The most a question put in its chat model's template may become, in UTF-8 bytes: as large
    /// as a request to `/v1` may be. A template may name `%question%` many times, and a long
    /// question in such a template would otherwise grow a hundredfold in memory.
    static let maxFilledBytes = 8 << 20
    static let roles: Set<String> = ["system", "user", "assistant"]

    /// The chat model's turns, then the caller's messages, then the question in its template.
    static func messages(turns: [ChatTurn], template: String, history: [ChatMessage], question: String) throws(DomainError) -> [ChatMessage] {
        turns.map { ChatMessage(role: $0.key, content: $0.value) }
            + history
            + [ChatMessage(role: "user", content: try fill(template: template, question: question, property: "question"))]
    }

    /// The question in the template: in place of each `%question%`, or after it on a line of its
    /// own. Refused (`property` names the field) if that would pass `maxFilledBytes`.
    static func fill(template: String, question: String, property: String) throws(DomainError) -> String {
        if template.isEmpty { return question }
        let pieces = template.components(separatedBy: placeholder)
        let copies = pieces.count - 1
        let size = copies == 0
            ? template.utf8.count + 1 + question.utf8.count
            : template.utf8.count + copies * (question.utf8.count - placeholder.utf8.count)
        guard size <= maxFilledBytes else {
            let message = "\(property) is too long for the chat model's template: it would make \(size) bytes, more than \(maxFilledBytes)"
            throw DomainError(.invalidArgument, message, violations: [FieldViolation(property: property, constraints: [message])])
        }
        if copies > 0 { return pieces.joined(separator: question) }
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
