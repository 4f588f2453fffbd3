import Foundation
import GRPCCore
import GRPCInProcessTransport
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Gateway

/// `/health`, `/openapi.json` and `/api` through the gateway's router, with the services in process.
@Suite("system routes", .serialized)
struct SystemRoutesTests {
    @Test("health names every instance it watches; the document and its viewer are served; unknown paths are 404 in the envelope")
    func systemRoutes() async throws {
        try await GatewayHarness.with { harness in
            let health = try await harness.send(.get, "/health")
            #expect(health.status == 200)
            #expect(health.data["status"] as? String == "SERVING")
            let services = Set((health.data["instances"] as? [[String: Any]] ?? []).compactMap { $0["service"] as? String })
            #expect(services == ["user-service", "ai-service"], "\(health.text)")

            let document = try await harness.send(.get, "/openapi.json")
            #expect(document.status == 200)
            #expect((document.json["paths"] as? [String: Any])?["/v1/chat/completions"] != nil)
            let viewer = try await harness.send(.get, "/api")
            #expect(viewer.status == 200 && viewer.text.contains("/openapi.json"))

            // Ready once the gateway holds the user service's revocations: its first fetch may
            // come after health on a loaded machine, and a load balancer waits for it too.
            var ready = try await harness.send(.get, "/ready")
            let deadline = ContinuousClock.now + .seconds(30)
            while ready.status != 200, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
                ready = try await harness.send(.get, "/ready")
            }
            #expect(ready.status == 200 && ready.data["status"] as? String == "READY", "\(ready.text)")

            let unknown = try await harness.send(.get, "/no/such/route")
            #expect(unknown.status == 404)
            #expect(unknown.json["statusCode"] as? Int == 404)
        }
    }

    @Test("readiness is 503 until the gateway has the user service's revocations, and 200 once it has them")
    func readinessFollowsRevocations() async throws {
        let revocations = RevocationList()
        let tokens = await AccessTokens(secret: testJWTSecret, lifetime: 3600, revocations: revocations)
        let router = try makeTestRouter(over: GRPCClient(transport: InProcessTransport().client), tokens: tokens, revocations: revocations)
        try await Application(router: router).test(.router) { http in
            try await http.execute(uri: "/ready", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(String(buffer: response.body).contains("user service"))
            }
            revocations.markSynced()
            try await http.execute(uri: "/ready", method: .get) { response in
                #expect(response.status == .ok)
            }
        }
    }
}
