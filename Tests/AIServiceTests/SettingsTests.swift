import AIService
import Platform
import Testing

@Suite("Settings")
struct SettingsTests {
    static func read(_ values: [String: String]) throws -> AIServiceSettings {
        let reader = SettingsReader(ConfigurationLoader.fixed(values))
        return try AIServiceSettings.read(reader, common: CommonSettings.read(reader), defaultPort: 0)
    }

    @Test func readsTheEnvironment() throws {
        let defaults = try Self.read([:])
        #expect(defaults.rateLimitPerMinute == 600 && defaults.prices.prices.isEmpty && defaults.quotaReservationSeconds == 900)
        let set = try Self.read(["AI_RATE_LIMIT_PER_MINUTE": "0", "AI_PRICES": #"{"local/*": {"promptPerMillionTokens": 1}}"#])
        #expect(set.rateLimitPerMinute == 0 && set.prices.price(provider: "local", model: "m")?.promptPerMillionTokens == 1)
        do {
            _ = try Self.read(["AI_RATE_LIMIT_PER_MINUTE": "lots", "AI_PRICES": "{", "AI_QUOTA_RESERVATION_SECONDS": "1"])
            Issue.record("bad settings were accepted")
        } catch let error as ConfigurationError {
            #expect(error.problems.count == 3)
            #expect(error.problems.contains { $0.hasPrefix("AI_PRICES") } && error.problems.contains { $0.hasPrefix("AI_RATE_LIMIT_PER_MINUTE") })
        }
    }

    @Test func readsQuotaAdmissionSettings() throws {
        let defaults = try Self.read([:])
        #expect(defaults.quotaMinimumCallTokens == 1 && defaults.quotaMinimumCallCost == 0.000_001 && defaults.quotaFirstCallWaitSeconds == 10)
        let set = try Self.read(["AI_QUOTA_MIN_CALL_TOKENS": "5", "AI_QUOTA_MIN_CALL_COST": "0.01", "AI_QUOTA_FIRST_CALL_WAIT_SECONDS": "0"])
        #expect(set.quotaMinimumCallTokens == 5 && set.quotaMinimumCallCost == 0.01 && set.quotaFirstCallWaitSeconds == 0)
        for bad in [["AI_QUOTA_MIN_CALL_COST": "0"], ["AI_QUOTA_MIN_CALL_COST": "nan"], ["AI_QUOTA_MIN_CALL_TOKENS": "0"], ["AI_QUOTA_FIRST_CALL_WAIT_SECONDS": "-1"]] {
            #expect(throws: ConfigurationError.self, "\(bad)") { try Self.read(bad) }
        }
    }

    @Test func readsPricesAndLimits() throws {
        let prices = #"{"openai/gpt-4o-mini": {"promptPerMillionTokens": 0.15, "completionPerMillionTokens": 0.6}, "openai/*": {"perAudioMinute": 0.006}}"#
        let table = try PriceTable.parse(json: prices).get()
        #expect(table.price(provider: "openai", model: "gpt-4o-mini")?.promptPerMillionTokens == 0.15)
        #expect(table.price(provider: "openai", model: "whisper-1")?.perAudioMinute == 0.006)
        #expect(table.price(provider: "local", model: "x") == nil)
        #expect(table.cost(provider: "local", model: "x", of: Consumption(promptTokens: 1_000)) == 0)
        #expect(abs(table.cost(provider: "openai", model: "gpt-4o-mini", of: Consumption(promptTokens: 1_000_000, completionTokens: 500_000)) - 0.45) < 1e-12)
    }

    @Test func rejectsBadPriceTables() {
        for bad in ["[1]", #"{"nomodel": {}}"#, #"{"a/b": {"perAudioMinute": -1}}"#, "not json"] {
            guard case .failure = PriceTable.parse(json: bad) else {
                Issue.record("accepted \(bad)")
                continue
            }
        }
    }
}
