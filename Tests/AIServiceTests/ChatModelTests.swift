import AIProviders
import Foundation
import AIService
import AISaaSProtos
import GRPCCore
import Platform
import Testing
import TestSupport

@Suite("Chat models")
struct ChatModelTests {
    static let directory = AIProviderDirectory([ScriptedProvider(name: "openai"), ScriptedProvider(name: "local", defaults: ProviderModels(chat: "llama"))], defaultName: "openai")

    @Test(arguments: TestDatabaseKind.enabled)
    func createsWithDefaultsAndReadsBack(kind: TestDatabaseKind) async throws {
        try await AIServiceHarness.run(kind, providers: Self.directory) { h in
            let before = Date().millisecondsSince1970
            let created = try await h.a.createModel("alice", name: "Tutor") {
                $0.struct = [.with { $0.key = "system"; $0.value = "be kind" }]
                $0.questionTpl = "Q: %question%"
            }
            #expect(created.provider == "openai")
            #expect(created.model == "gpt-test")
            #expect(created.status == .enable)
            #expect(created.userID == "alice")
            #expect(created.createdAt >= before && created.createdAt <= Date().millisecondsSince1970)
            let local = try await h.a.createModel("alice", name: "Local") { $0.provider = "local" }
            #expect(local.model == "llama")
            // Read through the other replica: the state is in the database.
            let read = try await asUser("alice") { try await h.b.chat.getChatModelById(.with { $0.id = created.id }) }
            #expect(read == created)
        }
    }

    @Test(arguments: TestDatabaseKind.enabled)
    func anotherUsersModelIsNotFoundForEveryMethod(kind: TestDatabaseKind) async throws {
        try await AIServiceHarness.run(kind, providers: Self.directory) { h in
            let model = try await h.a.createModel("alice", name: "Private")
            let byId = Grpc_Ai_V1_QueryChatModelByIdRequest.with { $0.id = model.id }
            let get = await rpcError { try await asUser("bob") { try await h.a.chat.getChatModelById(byId) } }
            let update = await rpcError { try await asUser("bob") { try await h.a.chat.updateChatModel(.with { $0.id = model.id; $0.name = "Mine" }) } }
            let delete = await rpcError { try await asUser("bob") { try await h.a.chat.deleteChatModel(byId) } }
            let invoke = await rpcError { try await h.a.ask("bob", "hi", chatModelId: model.id) }
            #expect([get?.code, update?.code, delete?.code, invoke?.code] == [.notFound, .notFound, .notFound, .notFound])
            let bobsList = try await asUser("bob") { try await h.a.chat.getChatModelList(.init()) }
            #expect(bobsList.results.isEmpty && bobsList.pagination.total == 0)
            // Alice's model survived bob's attempts unchanged.
            let still = try await asUser("alice") { try await h.a.chat.getChatModelById(byId) }
            #expect(still.name == "Private")
            let anonymous = await rpcError { try await asUser(nil) { try await h.a.chat.getChatModelList(.init()) } }
            #expect(anonymous?.code == .unauthenticated)
        }
    }

    /// A chat model reaches only what the operator offers: its provider's chat model or one of
    /// the models listed for it, never any model the provider would take (and no price covers).
    @Test(arguments: TestDatabaseKind.enabled)
    func aModelTheProviderDoesNotOfferIsRefused(kind: TestDatabaseKind) async throws {
        try await AIServiceHarness.run(kind, providers: Self.directory) { h in
            let error = await rpcError { try await h.a.createModel("alice", name: "Pricey") { $0.model = "o1-pro-unlisted" } }
            #expect(error?.code == .invalidArgument)
            #expect(error?.violatedProperties == ["model"])
            let listed = try await h.a.createModel("alice", name: "Default")
            #expect(!listed.model.isEmpty)
        }
    }

    @Test(arguments: TestDatabaseKind.enabled)
    func validationListsEveryFailingField(kind: TestDatabaseKind) async throws {
        try await AIServiceHarness.run(kind, providers: Self.directory) { h in
            let error = await rpcError {
                try await h.a.createModel("alice", name: "") {
                    $0.provider = "nope"
                    $0.model = " "
                    $0.questionTpl = String(repeating: "x", count: 4_001)
                    $0.struct = [
                        .with { $0.key = "system"; $0.value = "ok" },
                        .with { $0.key = "robot"; $0.value = "x" },
                        .with { $0.key = "user"; $0.value = "" },
                    ]
                }
            }
            #expect(error?.code == .invalidArgument)
            #expect(Set(error?.violatedProperties ?? []) == ["name", "provider", "model", "questionTpl", "struct[1].key", "struct[2].value"])
            let tooMany = await rpcError {
                try await h.a.createModel("alice", name: String(repeating: "n", count: 51)) {
                    $0.struct = Array(repeating: .with { $0.key = "user"; $0.value = "v" }, count: 51)
                }
            }
            #expect(Set(tooMany?.violatedProperties ?? []) == ["name", "struct"])
            // Names read in lists: nothing invisible, direction-changing, on several lines, or blank.
            for name in ["tab\there", "two\nlines", "bell\u{07}", "del\u{7F}", "   ", "zero\u{200B}width", "\u{202E}txt.exe"] {
                let refused = await rpcError { try await h.a.createModel("alice", name: name) }
                #expect(refused?.code == .invalidArgument && refused?.violatedProperties == ["name"], "\(name.debugDescription)")
            }
            // Joiners and tags belong to the text: a family emoji, a Persian word, a region's flag.
            for name in ["Café 助手 — v2", "Family 👨\u{200D}👩\u{200D}👧", "می\u{200C}خواهم", "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F} bot"] {
                #expect(try await h.a.createModel("alice", name: name).name == name, "\(name.debugDescription)")
            }
            let model = try await h.a.createModel("alice", name: "Valid")
            let badUpdate = await rpcError {
                try await asUser("alice") {
                    try await h.a.chat.updateChatModel(.with {
                        $0.id = model.id
                        $0.name = ""
                        $0.struct = [.with { $0.key = "tool"; $0.value = "x" }]
                    })
                }
            }
            #expect(Set(badUpdate?.violatedProperties ?? []) == ["name", "struct[0].key"])
            let badPage = await rpcError { try await asUser("alice") { try await h.a.chat.getChatModelList(.with { $0.current = 0; $0.pageSize = 101 }) } }
            #expect(Set(badPage?.violatedProperties ?? []) == ["current", "pageSize"])
        }
    }

    @Test(arguments: TestDatabaseKind.enabled)
    func namesAreUniquePerUserAmongLiveModels(kind: TestDatabaseKind) async throws {
        try await AIServiceHarness.run(kind, providers: Self.directory) { h in
            let first = try await h.a.createModel("alice", name: "Same")
            let duplicate = await rpcError { try await h.b.createModel("alice", name: "Same") }
            #expect(duplicate?.code == .alreadyExists)
            _ = try await h.a.createModel("bob", name: "Same")  // another user may use it
            let other = try await h.a.createModel("alice", name: "Other")
            let rename = await rpcError { try await asUser("alice") { try await h.a.chat.updateChatModel(.with { $0.id = other.id; $0.name = "Same" }) } }
            #expect(rename?.code == .alreadyExists)
            try await asUser("alice") { _ = try await h.a.chat.deleteChatModel(.with { $0.id = first.id }) }
            let gone = await rpcError { try await asUser("alice") { try await h.a.chat.getChatModelById(.with { $0.id = first.id }) } }
            #expect(gone?.code == .notFound)
            let again = try await h.a.createModel("alice", name: "Same")
            #expect(again.id != first.id)
        }
    }

    @Test(arguments: TestDatabaseKind.enabled)
    func updatesOnlyTheGivenFields(kind: TestDatabaseKind) async throws {
        try await AIServiceHarness.run(kind, providers: Self.directory) { h in
            let model = try await h.a.createModel("alice", name: "Before") {
                $0.struct = [.with { $0.key = "system"; $0.value = "s" }]
                $0.questionTpl = "T %question%"
            }
            try await asUser("alice") { _ = try await h.a.chat.updateChatModel(.with { $0.id = model.id; $0.name = "After" }) }
            let renamed = try await asUser("alice") { try await h.a.chat.getChatModelById(.with { $0.id = model.id }) }
            #expect(renamed.name == "After" && renamed.struct == model.struct && renamed.questionTpl == "T %question%")
            #expect(renamed.updatedAt >= model.updatedAt)
            try await asUser("alice") {
                _ = try await h.a.chat.updateChatModel(.with {
                    $0.id = model.id
                    $0.struct = [.with { $0.key = "assistant"; $0.value = "a" }]
                    $0.questionTpl = ""
                })
            }
            let changed = try await asUser("alice") { try await h.a.chat.getChatModelById(.with { $0.id = model.id }) }
            #expect(changed.struct.map(\.key) == ["assistant"] && changed.questionTpl == "" && changed.name == "After")
        }
    }

    @Test(arguments: TestDatabaseKind.enabled)
    func listsNewestFirstInPages(kind: TestDatabaseKind) async throws {
        try await AIServiceHarness.run(kind, providers: Self.directory) { h in
            var ids: [String] = []
            for index in 1...5 {
                ids.append(try await h.a.createModel("alice", name: "M\(index)").id)
                try await Task.sleep(for: .milliseconds(2))
            }
            _ = try await h.a.createModel("bob", name: "B")
            let first = try await asUser("alice") { try await h.a.chat.getChatModelList(.with { $0.pageSize = 2 }) }
            #expect(first.results.map(\.id) == [ids[4], ids[3]])
            #expect(first.pagination.current == 1 && first.pagination.pageSize == 2 && first.pagination.total == 5)
            let last = try await asUser("alice") { try await h.a.chat.getChatModelList(.with { $0.current = 3; $0.pageSize = 2 }) }
            #expect(last.results.map(\.id) == [ids[0]])
            let defaults = try await asUser("alice") { try await h.a.chat.getChatModelList(.init()) }
            #expect(defaults.pagination.pageSize == 50 && defaults.results.count == 5)
        }
    }

    /// `replace_struct` lets a client clear the turns; without it an empty `struct` keeps them.
    @Test(arguments: TestDatabaseKind.enabled)
    func replaceStructClearsTheTurnsOldClientsKeepThem(kind: TestDatabaseKind) async throws {
        try await AIServiceHarness.run(kind, providers: AIProviderDirectory([ScriptedProvider()])) { h in
            let model = try await h.a.createModel("alice", name: "Turns") { $0.struct = [.with { $0.key = "system"; $0.value = "s" }] }
            try await asUser("alice") { _ = try await h.a.chat.updateChatModel(.with { $0.id = model.id; $0.name = "Kept" }) }
            let kept = try await asUser("alice") { try await h.b.chat.getChatModelById(.with { $0.id = model.id }) }
            #expect(kept.struct.map(\.value) == ["s"] && kept.name == "Kept")
            try await asUser("alice") {
                _ = try await h.a.chat.updateChatModel(.with { $0.id = model.id; $0.replaceStruct = true; $0.struct = [.with { $0.key = "user"; $0.value = "u" }] })
            }
            let replaced = try await asUser("alice") { try await h.b.chat.getChatModelById(.with { $0.id = model.id }) }
            #expect(replaced.struct.map(\.key) == ["user"])
            try await asUser("alice") { _ = try await h.a.chat.updateChatModel(.with { $0.id = model.id; $0.replaceStruct = true }) }
            let cleared = try await asUser("alice") { try await h.b.chat.getChatModelById(.with { $0.id = model.id }) }
            #expect(cleared.struct.isEmpty && cleared.name == "Kept")
        }
    }
}
