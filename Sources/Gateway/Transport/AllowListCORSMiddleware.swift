import HTTPTypes
import Hummingbird

/// CORS for the configured origins only (`*` for any): Hummingbird's `CORSMiddleware` answers
/// requests from an allowed origin; others pass on without CORS headers, so browsers block them.
struct AllowListCORSMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext
    private let allowed: Set<String>
    private let allowAll: Bool
    private let cors: CORSMiddleware<GatewayRequestContext>

    init(origins: [String]) {
        allowed = Set(origins)
        allowAll = origins.contains("*")
        cors = CORSMiddleware(
            allowOrigin: allowAll ? .all : .originBased,
            allowHeaders: [
                .authorization, .contentType, HTTPField.Name("x-request-id")!, HTTPField.Name("x-authorization")!,
                HTTPField.Name("x-cc-content-sha256")!, HTTPField.Name("x-cc-nonce")!,
            ],
            allowMethods: [.get, .post, .put, .patch, .delete, .options],
            exposedHeaders: ["x-request-id", "retry-after"],
            maxAge: .seconds(600)
        )
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let origin = request.headers[.origin], allowAll || allowed.contains(origin) else {
            return try await next(request, context)
        }
        return try await cors.handle(request, context: context, next: next)
    }
}
