import AKSKSigning
import HTTPTypes
import Hummingbird
import Platform

/// The OpenAI-compatible API's credentials: `Authorization: Bearer sk-…` (an API key), or, for
/// devices that already sign, a cc-auth-v1 signature as on `/ai/invoke`. The handler runs as the
/// key's owner, with the key's id in the request scope (rate limits and usage are per key).
struct OpenAIAuthMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext
    let apiKeys: APIKeyVerifier
    let revocations: RevocationList
    let sync: RevocationSync
    let maxRevocationAge: Duration
    let signed: SignedRequestMiddleware
    let instruments: AuthInstruments

    func handle(_ request: Request, context: Context, next: @concurrent (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization] else {
            // The signature travels in the x-authorization header or, as on /ai/invoke, the query.
            let signedInQuery = request.uri.queryParameters[Substring(CCAuthV1.authorizationHeader)] != nil
            if request.headers[values: HTTPField.Name(CCAuthV1.authorizationHeader)!].isEmpty, !signedInQuery {
                instruments.apiKeyRefusals.increment()
                throw APIError(.unauthorized, message: "You didn't provide an API key. Send it as Authorization: Bearer sk-…, or sign the request with cc-auth-v1.", headers: [:])
                    .with(reason: .invalidApiKey)
            }
            return try await signed.handle(request, context: context, next: next)
        }
        let key = try await instruments.checking("api key verify", refusal: instruments.apiKeyRefusals) {
            try await verify(header)
        }
        var context = context
        context.apiKey = key
        let scope = RequestScope(requestId: context.requestId, userId: key.userId, role: key.role, apiKeyId: key.keyId, traceId: context.clientTraceId)
        return try await RequestScope.$current.withValue(scope) {
            try await next(request, context)
        }
    }

    private func verify(_ header: String) async throws -> VerifiedAPIKey {
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw APIError.unauthenticated("malformed Authorization header: expected Bearer sk-…").with(reason: .invalidApiKey)
        }
        try await sync.requireFresh(revocations, maxAge: maxRevocationAge, checking: "API key")
        return try await apiKeys.verify(String(parts[1].trimmingHTTPWhitespace()))
    }
}

extension APIError {
    func with(reason: ErrorReason) -> APIError {
        var error = self
        error.reason = reason.rawValue
        return error
    }
}
