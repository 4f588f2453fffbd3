import Foundation
import Testing

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

            let unknown = try await harness.send(.get, "/no/such/route")
            #expect(unknown.status == 404)
            #expect(unknown.json["statusCode"] as? Int == 404)
        }
    }
}
