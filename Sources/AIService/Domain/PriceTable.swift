import Foundation

/// Prices in currency units, per provider and model (`provider/model`, or `provider/*` for every
/// model of a provider). A model without a price costs nothing.
public struct PriceTable: Sendable, Equatable {
    public struct Price: Sendable, Equatable, Codable {
        public var promptPerMillionTokens: Double?
        public var completionPerMillionTokens: Double?
        public var perAudioMinute: Double?
        public var perMillionCharacters: Double?

        public init(promptPerMillionTokens: Double? = nil, completionPerMillionTokens: Double? = nil, perAudioMinute: Double? = nil, perMillionCharacters: Double? = nil) {
            self.promptPerMillionTokens = promptPerMillionTokens
            self.completionPerMillionTokens = completionPerMillionTokens
            self.perAudioMinute = perAudioMinute
            self.perMillionCharacters = perMillionCharacters
        }
    }

    public var prices: [String: Price]

    public init(_ prices: [String: Price] = [:]) {
        self.prices = prices
    }

    /// Parses the `AI_PRICES` JSON object; the error lists what is wrong with it.
    public static func parse(json: String) -> Result<PriceTable, PriceTableError> {
        let decoded: [String: Price]
        do {
            decoded = try JSONDecoder().decode([String: Price].self, from: Data(json.utf8))
        } catch {
            return .failure(PriceTableError(problem: "must be a JSON object of \"provider/model\": {promptPerMillionTokens, completionPerMillionTokens, perAudioMinute, perMillionCharacters}"))
        }
        for (key, price) in decoded {
            let parts = key.split(separator: "/", omittingEmptySubsequences: false)
            if parts.count < 2 || parts[0].isEmpty || parts.dropFirst().joined(separator: "/").isEmpty {
                return .failure(PriceTableError(problem: "key '\(key)' must be \"provider/model\" or \"provider/*\""))
            }
            let values = [price.promptPerMillionTokens, price.completionPerMillionTokens, price.perAudioMinute, price.perMillionCharacters]
            if values.contains(where: { ($0 ?? 0) < 0 || !($0 ?? 0).isFinite }) {
                return .failure(PriceTableError(problem: "prices of '\(key)' must be finite and not negative"))
            }
        }
        return .success(PriceTable(decoded))
    }

    public func price(provider: String, model: String) -> Price? {
        prices["\(provider)/\(model)"] ?? prices["\(provider)/*"]
    }

    public func cost(provider: String, model: String, of usage: Consumption) -> Double {
        guard let price = price(provider: provider, model: model) else { return 0 }
        var cost = 0.0
        cost += Double(usage.promptTokens) * (price.promptPerMillionTokens ?? 0) / 1_000_000
        cost += Double(usage.completionTokens) * (price.completionPerMillionTokens ?? 0) / 1_000_000
        cost += usage.audioSeconds / 60 * (price.perAudioMinute ?? 0)
        cost += Double(usage.characters) * (price.perMillionCharacters ?? 0) / 1_000_000
        return cost
    }
}

public struct PriceTableError: Error, Sendable {
    public var problem: String
}

/// What one invocation consumed, whatever its kind.
public struct Consumption: Sendable, Equatable {
    public var promptTokens = 0
    public var completionTokens = 0
    public var totalTokens = 0
    public var audioSeconds = 0.0
    public var characters = 0

    public init(promptTokens: Int = 0, completionTokens: Int = 0, totalTokens: Int = 0, audioSeconds: Double = 0, characters: Int = 0) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.totalTokens = totalTokens
        self.audioSeconds = audioSeconds
        self.characters = characters
    }
}
