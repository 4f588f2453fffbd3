import AISaaSProtos
import GRPCCore
import Platform
import Testing
import TestSupport

/// Clients generated from the original definitions name the caller `requestid`, `userid` and
/// `tenantid`, with no role: `userid` alone is a caller with the user role.
@Suite("the original gateway's metadata keys")
struct LegacyMetadataTests {
    @Test("userid acts as that user, held to their own account; malformed identities are refused", arguments: TestDatabaseKind.enabled)
    func legacyCaller(kind: TestDatabaseKind) async throws {
        try await UserServiceHarness.run(kind) { harness in
            let alice = try await harness.register("alice").user
            let bob = try await harness.register("bobby").user
            let legacy: Metadata = ["requestid": "legacy-request-1", "userid": .string(alice.id), "tenantid": "tenant-7"]

            let own = try await harness.client.getUserById(.with { $0.id = alice.id }, metadata: legacy)
            #expect(own.username == "alice")
            let other = await rpcError { try await harness.client.getUserById(.with { $0.id = bob.id }, metadata: legacy) }
            #expect(other?.code == .permissionDenied)
            let list = await rpcError { try await harness.client.listUsers(.with { $0.pageSize = 10 }, metadata: legacy) }
            #expect(list?.code == .permissionDenied)

            // The platform's own keys win over the legacy ones.
            let both: Metadata = ["x-user-id": .string(bob.id), "x-user-role": "user", "userid": .string(alice.id)]
            #expect(try await harness.client.getUserById(.with { $0.id = bob.id }, metadata: both).username == "bobby")

            for bad in [String(repeating: "x", count: 5000), "a b", "line\nbreak"] {
                let refused = await rpcError { try await harness.client.getUserById(.with { $0.id = alice.id }, metadata: ["userid": .string(bad)]) }
                #expect(refused?.code == .unauthenticated)
                #expect((refused?.message.utf8.count ?? 0) < 200)
            }
        }
    }
}
