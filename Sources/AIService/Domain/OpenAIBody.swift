import AIProviders
import Platform
import WireFormats

/// Reading and rewriting OpenAI request and answer bodies. Only what the platform must know or
/// change is touched; every other member keeps its place and its exact text.
enum OpenAIBody {
    static func invalid(_ property: String, _ message: String) -> DomainError {
        DomainError(.invalidArgument, message, violations: [FieldViolation(property: property, constraints: [message])])
    }

    /// The body as a JSON object.
    static func object(_ bytes: [UInt8]) throws(DomainError) -> JSONObject {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            throw DomainError(.invalidArgument, "We could not parse the JSON body of your request: \(error)")
        }
        guard let object = value.objectValue else {
            throw DomainError(.invalidArgument, "The body of your request must be a JSON object, not \(value.typeName).")
        }
        return object
    }

    static func requiredString(_ object: JSONObject, _ key: String) throws(DomainError) -> String {
        guard let value = object[key] else { throw invalid(key, "you must provide '\(key)'") }
        guard let text = value.stringValue, !text.isEmpty else { throw invalid(key, "'\(key)' must be a non-empty string") }
        return text
    }

    static func optionalString(_ object: JSONObject, _ key: String) throws(DomainError) -> String? {
        guard let value = object[key], value != .null else { return nil }
        guard let text = value.stringValue else { throw invalid(key, "'\(key)' must be a string") }
        return text
    }

    /// The provider's `usage`, when it reported one.
    static func usage(_ value: JSONValue?) -> Consumption? {
        guard let usage = value?.objectValue else { return nil }
        func count(_ key: String) -> Int? {
            guard let number = usage[key]?.doubleValue, number.isFinite, number >= 0 else { return nil }
            return Int(min(number, Double(Int32.max)))
        }
        let prompt = count("prompt_tokens") ?? count("input_tokens") ?? 0
        let completion = count("completion_tokens") ?? count("output_tokens") ?? 0
        guard prompt > 0 || completion > 0 || count("total_tokens") != nil else { return nil }
        return Consumption(promptTokens: prompt, completionTokens: completion, totalTokens: count("total_tokens") ?? prompt + completion)
    }

    /// Characters of text in `messages` (string contents and text parts), for estimates.
    static func textCharacters(ofMessages messages: JSONValue?) -> Int {
        (messages?.arrayValue ?? []).reduce(0) { sum, message in
            sum + textCharacters(ofContent: message.objectValue?["content"])
        }
    }

    static func textCharacters(ofContent content: JSONValue?) -> Int {
        switch content {
        case .string(let text): text.count
        case .array(let parts): parts.reduce(0) { $0 + ($1.objectValue?["text"]?.stringValue?.count ?? 0) }
        default: 0
        }
    }

    /// What a chat call may spend, as far as its body tells before it runs: its prompt, estimated,
    /// and the answer's limit (`max_completion_tokens`, or the older `max_tokens`) for each of
    /// its `n` choices.
    static func expectedChat(_ body: JSONObject, promptCharacters: Int) -> Consumption {
        func positive(_ key: String) -> Int? {
            guard let number = body[key]?.doubleValue, number.isFinite, number >= 1 else { return nil }
            return Int(min(number, Double(Int32.max)))
        }
        let choices = min(positive("n") ?? 1, 128)
        return Consumption.expected(promptCharacters: promptCharacters, answerLimit: (positive("max_completion_tokens") ?? positive("max_tokens")).map { $0 * choices })
    }

    /// Roughly four characters a token, at least one for a prompt that was sent.
    static func estimate(promptCharacters: Int, completionCharacters: Int) -> Consumption {
        let prompt = max(1, (promptCharacters + 3) / 4), completion = (completionCharacters + 3) / 4
        return Consumption(promptTokens: prompt, completionTokens: completion, totalTokens: prompt + completion)
    }
}

/// A chat completion body made ready for the provider.
struct PreparedChat: Sendable {
    var body: JSONObject
    /// Whether the client asked for the final usage chunk of a stream.
    var clientWantsUsage: Bool
    var promptCharacters: Int
}

extension OpenAIBody {
    static let maxMessages = 4096

    /// Checks the parts the platform relies on and applies the chat model, if any: its turns
    /// before the messages and its question template on the last user message, as
    /// `/ai/invoke/chat_completion` does. A stream always asks the provider for usage.
    static func prepareChat(_ body: JSONObject, model: String, chatModel: ChatModel?, stream: Bool) throws(DomainError) -> PreparedChat {
        if let value = body["stream"], value != .null, value != .bool(true), value != .bool(false) {
            throw invalid("stream", "'stream' must be a boolean")
        }
        if let value = body["stream_options"], value != .null, value.objectValue == nil {
            throw invalid("stream_options", "'stream_options' must be an object")
        }
        guard let messages = body["messages"] else { throw invalid("messages", "you must provide 'messages'") }
        guard var items = messages.arrayValue, !items.isEmpty else {
            throw invalid("messages", "'messages' must be a non-empty array")
        }
        if items.count > maxMessages { throw invalid("messages", "'messages' must have at most \(maxMessages) items") }
        for (index, item) in items.enumerated() {
            guard let message = item.objectValue else { throw invalid("messages[\(index)]", "messages[\(index)] must be an object") }
            guard message["role"]?.stringValue != nil else {
                throw invalid("messages[\(index)].role", "messages[\(index)].role must be a string")
            }
        }
        var body = body
        if let chatModel {
            if !chatModel.questionTemplate.isEmpty,
               let last = items.lastIndex(where: { $0.objectValue?["role"]?.stringValue == "user" }),
               var message = items[last].objectValue {
                message["content"] = try filled(message["content"], template: chatModel.questionTemplate, property: "messages[\(last)].content")
                items[last] = .object(message)
            }
            let turns = chatModel.turns.map { JSONValue.object(JSONObject([("role", .string($0.key)), ("content", .string($0.value))])) }
            items = turns + items
            body["messages"] = .array(items)
        }
        body["model"] = .string(model)
        var wantsUsage = false
        if stream {
            var options = body["stream_options"]?.objectValue ?? JSONObject()
            wantsUsage = options["include_usage"] == .bool(true)
            options["include_usage"] = .bool(true)
            body["stream_options"] = .object(options)
        }
        return PreparedChat(body: body, clientWantsUsage: wantsUsage, promptCharacters: textCharacters(ofMessages: body["messages"]))
    }

    /// The template applied to a message's text: a string, or the first text part of an array.
    private static func filled(_ content: JSONValue?, template: String, property: String) throws(DomainError) -> JSONValue? {
        switch content {
        case .string(let text):
            return .string(try ChatPrompt.fill(template: template, question: text, property: property))
        case .array(var parts):
            guard let index = parts.firstIndex(where: { $0.objectValue?["type"]?.stringValue == "text" }),
                  var part = parts[index].objectValue, let text = part["text"]?.stringValue else { return content }
            part["text"] = .string(try ChatPrompt.fill(template: template, question: text, property: property))
            parts[index] = .object(part)
            return .array(parts)
        default:
            return content
        }
    }
}
