import Foundation
import HTTPTypes
import Hummingbird
import Platform

/// `/health`, `/ready`, `/openapi.json` and the Swagger UI at `/api`.
struct SystemRoutes {
    let monitors: [InstanceHealthMonitor]
    /// What `/ready` asks: whether this gateway has its revocations (and so can check tokens).
    var revocations: RevocationList?
    var maxRevocationAge: Duration = .seconds(5)
    /// With `DISCOVERY=etcd`: whether etcd answers. An unreachable registry does not make the
    /// gateway unhealthy (it keeps the last known instances) but is reported.
    var registry: RegistryWatcher?
    /// The settings this process runs with: the last applied and the last refused version.
    var configuration: ConfigurationCenter?

    func register(on router: Router<GatewayRequestContext>) {
        // Load balancers and uptime checks often ask with HEAD: the same answer without its body.
        router.get("/health", use: health)
        router.head("/health", use: health)
        router.get("/ready", use: ready)
        router.head("/ready", use: ready)
        router.get("/openapi.json", use: openAPIDocument)
        router.get("/api", use: swaggerUI)
    }

    struct InstanceReport: Encodable {
        let service: String
        let address: String
        let status: String
    }

    struct RegistryReport: Encodable {
        let status: String
        let detail: String?
        let instances: Int
    }

    struct HealthReport: Encodable {
        let status: String
        let gateway: String
        let instances: [InstanceReport]
        let registry: RegistryReport?
        let configuration: ConfigurationCenter.Status?
    }

    /// 200 when every instance of every service reports SERVING; otherwise 503 naming the others.
    /// The monitors keep the statuses current (a watch stream per instance), so this asks nobody.
    @Sendable func health(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let results = monitors.flatMap(\.snapshot).sorted { ($0.service, $0.address) < ($1.service, $1.address) }
        let failing = results.filter { !$0.serving }
        guard failing.isEmpty else {
            throw APIError(
                .serviceUnavailable,
                message: "unhealthy: " + failing.map { "\($0.service)@\($0.address) (\($0.detail))" }.joined(separator: "; "),
                meta: failing.map { FieldViolation(property: "\($0.service)@\($0.address)", constraints: [$0.detail]) }
            )
        }
        return try ResponseBody.success(HealthReport(
            status: "SERVING", gateway: "SERVING",
            instances: results.map { InstanceReport(service: $0.service, address: $0.address, status: $0.detail) },
            registry: registry.map { registry in
                let status = registry.status
                return RegistryReport(
                    status: status.reachable ? "REACHABLE" : "UNREACHABLE", detail: status.reachable ? nil : status.detail, instances: status.instances
                )
            },
            configuration: configuration?.status
        ))
    }

    struct ReadinessReport: Encodable {
        let status: String
    }

    /// Whether this gateway can serve: 200 once it has the user service's revocations and while
    /// it keeps them current; 503 when it cannot reach the user service. Unlike `/health`, one
    /// instance not serving (or every instance of the AI service, while its database is down)
    /// does not make it unready: taking every gateway out of a load balancer for that would turn
    /// the AI routes' 503 into an outage of the whole API.
    @Sendable func ready(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        if let revocations, revocations.isStale(maxAge: maxRevocationAge) {
            throw APIError(.serviceUnavailable, message: "not ready: the user service's revocations are not current (is the user service reachable?)")
        }
        return try ResponseBody.success(ReadinessReport(status: "READY"))
    }

    @Sendable func openAPIDocument(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        var response = ResponseBody.json(try OpenAPIDocument.data(), status: .ok)
        response.headers[.cacheControl] = "public, max-age=300"
        return response
    }

    @Sendable func swaggerUI(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        Response(
            status: .ok,
            headers: [
                .contentType: "text/html; charset=utf-8",
                .contentSecurityPolicy: "default-src 'none'; script-src 'unsafe-inline' https://unpkg.com; style-src https://unpkg.com; img-src 'self' data: https://unpkg.com; connect-src 'self'",
            ],
            body: ResponseBody.bytes(Data(Self.swaggerPage.utf8))
        )
    }

    static let swaggerPage = """
        <!doctype html>
        <html lang="en">
        <head>
          <meta charset="utf-8">
          <title>AI SaaS platform API</title>
          <link rel="stylesheet" href="https://unpkg.com/swagger-ui-dist@5/swagger-ui.css">
        </head>
        <body>
          <div id="swagger-ui"></div>
          <script src="https://unpkg.com/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
          <script>window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui" });</script>
        </body>
        </html>
        """
}

/// The OpenAPI document shipped with the gateway (`Resources/openapi.json`).
public enum OpenAPIDocument {
    /// Read once: the document is part of the build and never changes while running.
    private static let loaded: Result<Data, APIError> = {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json"),
              let data = try? Data(contentsOf: url) else {
            return .failure(APIError(.internalServerError, message: "OpenAPI document missing from the build"))
        }
        return .success(data)
    }()

    public static func data() throws -> Data {
        try loaded.get()
    }
}
