import AIService
import AISaaSProtos
import GRPCCore
import Platform
import Testing

@Suite("the original gateway's metadata keys (AI service)")
struct AILegacyMetadataTests {
    @Test("a client generated from the original ai.proto, sending userid, works as that user")
    func legacyCaller() async throws {
        let provider = ScriptedProvider()
        try await AIServiceHarness.run(.sqlite, providers: AIProviderDirectory([provider])) { harness in
            let legacy: Metadata = ["requestid": "legacy-1", "userid": "user-legacy", "tenantid": "t-1"]
            let created = try await harness.a.chat.createChatModel(.with { $0.name = "persona" }, metadata: legacy)
            #expect(created.userID == "user-legacy")
            let page = try await harness.a.chat.getChatModelList(.with { $0.pageSize = 10 }, metadata: legacy)
            #expect(page.results.map(\.id) == [created.id])
            let someoneElse = try await harness.a.chat.getChatModelList(.with { $0.pageSize = 10 }, metadata: ["userid": "user-other"])
            #expect(someoneElse.results.isEmpty)
            let none = await rpcError { try await harness.a.chat.getChatModelList(.with { $0.pageSize = 10 }) }
            #expect(none?.code == .unauthenticated)
        }
    }
}
