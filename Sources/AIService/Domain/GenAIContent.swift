import AIProviders
import WireFormats

/// `OTEL_GENAI_CAPTURE_CONTENT=true`: a chat call's prompt and answer go on its GenAI span as
/// `gen_ai.input.messages` and `gen_ai.output.messages`, JSON in OpenTelemetry's message format
/// (`[{"role":"user","parts":[{"type":"text","content":"…"}]}]`). Off by default, since they are
/// the customers' data; nothing is built unless a span will carry it.
enum GenAIContent {
    struct Message: Sendable, Equatable {
        var role: String
        /// The text parts; a part that is not text (an image) is kept as its type alone.
        var parts: [Part]
        var finishReason: String?

        enum Part: Sendable, Equatable {
            case text(String)
            case other(type: String)
        }
    }

    static func json(_ messages: [Message]) -> String {
        let values = messages.map { message -> JSONValue in
            var members: [(String, JSONValue)] = [("role", .string(message.role))]
            members.append(("parts", .array(message.parts.map { part in
                switch part {
                case .text(let text): .object(JSONObject([("type", .string("text")), ("content", .string(text))]))
                case .other(let type): .object(JSONObject([("type", .string(type))]))
                }
            })))
            if let reason = message.finishReason { members.append(("finish_reason", .string(reason))) }
            return .object(JSONObject(members))
        }
        return String(decoding: JSONWriter.bytes(.array(values)), as: UTF8.self)
    }

    static func messages(_ prompt: [ChatMessage]) -> [Message] {
        prompt.map { Message(role: $0.role, parts: [.text($0.content)]) }
    }

    static func answer(_ completion: ChatCompletion) -> [Message] {
        completion.choices.map { Message(role: $0.message.role, parts: [.text($0.message.content)], finishReason: $0.finishReason) }
    }

    /// A streamed answer, put together from its chunks' deltas.
    struct StreamedAnswer: Sendable {
        private var texts: [Int: String] = [:]
        private var finishReasons: [Int: String] = [:]

        mutating func add(index: Int, text: String?, finishReason: String?) {
            texts[index, default: ""] += text ?? ""
            if let finishReason { finishReasons[index] = finishReason }
        }

        mutating func add(_ chunk: ChatCompletionDelta) {
            for choice in chunk.choices { add(index: choice.index, text: choice.content, finishReason: choice.finishReason) }
        }

        /// One OpenAI stream chunk's `choices`.
        mutating func add(openAIChoices choices: [JSONValue]) {
            for case .object(let choice) in choices {
                let index = choice["index"]?.doubleValue.map { Int(max(0, min($0, 1024))) } ?? 0
                add(index: index, text: choice["delta"]?.objectValue?["content"]?.stringValue, finishReason: choice["finish_reason"]?.stringValue)
            }
        }

        var messages: [Message] {
            texts.keys.sorted().map { Message(role: "assistant", parts: [.text(texts[$0] ?? "")], finishReason: finishReasons[$0]) }
        }
    }

    /// An OpenAI request's `messages`.
    static func messages(openAI value: JSONValue?) -> [Message] {
        (value?.arrayValue ?? []).compactMap { item in
            guard let message = item.objectValue else { return nil }
            return Message(role: message["role"]?.stringValue ?? "user", parts: parts(message["content"]))
        }
    }

    /// The `choices` of an OpenAI chat answer, each as the assistant's message.
    static func answer(openAI value: JSONValue?) -> [Message] {
        (value?.objectValue?["choices"]?.arrayValue ?? []).compactMap { item in
            guard let choice = item.objectValue else { return nil }
            let message = choice["message"]?.objectValue
            return Message(
                role: message?["role"]?.stringValue ?? "assistant", parts: parts(message?["content"]),
                finishReason: choice["finish_reason"]?.stringValue
            )
        }
    }

    private static func parts(_ content: JSONValue?) -> [Message.Part] {
        switch content {
        case .string(let text):
            return [.text(text)]
        case .array(let items):
            return items.compactMap { item in
                guard let part = item.objectValue else { return nil }
                let type = part["type"]?.stringValue ?? "unknown"
                if type == "text", let text = part["text"]?.stringValue { return .text(text) }
                return .other(type: type)
            }
        default:
            return []
        }
    }
}

extension Admission {
    /// The prompt, on the span when content is captured.
    func recordInput(_ messages: @autoclosure () -> [GenAIContent.Message]) {
        guard capturesContent, let span else { return }
        span.attributes["gen_ai.input.messages"] = GenAIContent.json(messages())
    }

    /// The answer, on the span when content is captured.
    func recordOutput(_ messages: @autoclosure () -> [GenAIContent.Message]) {
        guard capturesContent, let span else { return }
        span.attributes["gen_ai.output.messages"] = GenAIContent.json(messages())
    }
}
