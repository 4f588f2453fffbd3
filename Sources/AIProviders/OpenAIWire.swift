/// The JSON shapes of the OpenAI HTTP API that this module sends and reads. Only the fields used
/// are declared; providers add many more, which decoding ignores.
enum OpenAIWire {
    struct ChatRequest: Encodable {
        struct StreamOptions: Encodable {
            var includeUsage: Bool
            enum CodingKeys: String, CodingKey { case includeUsage = "include_usage" }
        }

        var model: String
        var messages: [ChatMessage]
        var temperature: Double?
        var maxTokens: Int?
        var stream: Bool?
        var streamOptions: StreamOptions?

        enum CodingKeys: String, CodingKey {
            case model, messages, temperature, stream
            case maxTokens = "max_tokens"
            case streamOptions = "stream_options"
        }

        init(_ request: ChatCompletionRequest, stream: Bool) {
            model = request.model
            messages = request.messages
            temperature = request.temperature
            maxTokens = request.maxTokens
            self.stream = stream ? true : nil
            streamOptions = stream ? StreamOptions(includeUsage: true) : nil
        }
    }

    struct Usage: Decodable {
        var promptTokens: Int?
        var completionTokens: Int?
        var totalTokens: Int?

        enum CodingKeys: String, CodingKey {
            case promptTokens = "prompt_tokens"
            case completionTokens = "completion_tokens"
            case totalTokens = "total_tokens"
        }

        /// The counts as the platform books them, nil when none is one: a negative count is none
        /// (a provider's bug must not lower what a user has spent), a huge one is capped, as the
        /// `/v1` routes read them.
        var tokenUsage: TokenUsage? {
            func count(_ value: Int?) -> Int? { value.flatMap { $0 >= 0 ? min($0, Int(Int32.max)) : nil } }
            let prompt = count(promptTokens), completion = count(completionTokens), total = count(totalTokens)
            guard prompt != nil || completion != nil || total != nil else { return nil }
            return TokenUsage(promptTokens: prompt ?? 0, completionTokens: completion ?? 0, totalTokens: total ?? (prompt ?? 0) + (completion ?? 0))
        }
    }

    struct ChatResponse: Decodable {
        struct Choice: Decodable {
            struct Message: Decodable {
                var role: String?
                var content: String?
            }
            var index: Int?
            var message: Message
            var finishReason: String?
            enum CodingKeys: String, CodingKey {
                case index, message
                case finishReason = "finish_reason"
            }
        }
        var choices: [Choice]
        var usage: Usage?
    }

    struct ChatChunk: Decodable {
        struct Choice: Decodable {
            struct Delta: Decodable {
                var role: String?
                var content: String?
            }
            var index: Int?
            var delta: Delta?
            var finishReason: String?
            enum CodingKeys: String, CodingKey {
                case index, delta
                case finishReason = "finish_reason"
            }
        }
        var choices: [Choice]?
        var usage: Usage?
        /// Some providers report a failure inside an already started stream.
        var error: ErrorBody.Detail?
    }

    struct TranscriptionResponse: Decodable {
        var text: String
    }

    struct SpeechRequest: Encodable {
        var model: String
        var input: String
        var voice: String
        var responseFormat: String
        enum CodingKeys: String, CodingKey {
            case model, input, voice
            case responseFormat = "response_format"
        }
    }

    /// `{"error": {"message": …, "type": …, "code": …}}`; only `type` and `code` are ever logged.
    struct ErrorBody: Decodable {
        struct Detail: Decodable {
            var type: String?
            var code: String?

            enum CodingKeys: String, CodingKey { case type, code }

            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                type = try? container.decodeIfPresent(String.self, forKey: .type)
                // Some providers send a number.
                code = (try? container.decodeIfPresent(String.self, forKey: .code))
                    ?? (try? container.decodeIfPresent(Int.self, forKey: .code)).flatMap { $0.map(String.init) }
            }
        }
        var error: Detail?
    }
}
