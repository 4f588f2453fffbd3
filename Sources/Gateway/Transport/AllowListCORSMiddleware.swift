import HTTPTypes
import Hummingbird
import Platform

/// CORS for the configured origins only (`*` for any): Hummingbird's `CORSMiddleware` answers
/// requests from an allowed origin; others pass on without CORS headers, so browsers block them.
/// The origins may change while the gateway runs (`CORS_ALLOWED_ORIGINS` is a dynamic setting).
struct AllowListCORSMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext
    private let origins: LiveSetting<AllowedOrigins>

    init(origins: LiveSetting<AllowedOrigins>) {
        self.origins = origins
    }

    @concurrent func handle(_ request: Request, context: Context, next: @concurrent (Request, Context) async throws -> Response) async throws -> Response {
        guard let origin = request.headers[.origin] else { return try await next(request, context) }
        let allowed = origins.current
        guard allowed.allowAll || allowed.origins.contains(origin) else {
            return try await next(request, context)
        }
        return try await (allowed.allowAll ? Self.any : Self.echoing).handle(request, context: context, next: next)
    }

    private static let any = cors(allowAll: true)
    private static let echoing = cors(allowAll: false)

    private static func cors(allowAll: Bool) -> CORSMiddleware<GatewayRequestContext> {
        CORSMiddleware(
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
}

/// `CORS_ALLOWED_ORIGINS`: the origins browsers may call from (`*` for any; none by default).
struct AllowedOrigins: Sendable, Equatable {
    var origins: Set<String>
    var allowAll: Bool

    init(_ origins: [String]) {
        self.origins = Set(origins)
        allowAll = origins.contains("*")
    }
}
