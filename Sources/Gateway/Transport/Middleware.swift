import Foundation
import GRPCCore
import HTTPTypes
import Hummingbird
import HummingbirdAuth
import Logging
import NIOCore
import NIOHTTP1
import Platform
import Synchronization

extension HTTPField.Name {
    static let requestId = HTTPField.Name("x-request-id")!
    static let xFrameOptions = HTTPField.Name("X-Frame-Options")!
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!
    static let crossOriginOpenerPolicy = HTTPField.Name("Cross-Origin-Opener-Policy")!
}

/// The methods served on each path, to tell an unknown path (404) from a wrong method (405).
/// Paths resolve as Hummingbird's router resolves them: at each segment a literal beats a
/// parameter, and a parameter is tried only when the literal leads nowhere; the methods are
/// those of the one route the path lands on.
final class RouteTable: Sendable {
    private final class Node: Sendable {
        let literals: [Substring: Node]
        let parameter: Node?
        let methods: Set<HTTPRequest.Method>

        init(_ routes: [(segments: ArraySlice<Substring>, method: HTTPRequest.Method)]) {
            var literalRoutes: [Substring: [(segments: ArraySlice<Substring>, method: HTTPRequest.Method)]] = [:]
            var parameterRoutes: [(segments: ArraySlice<Substring>, method: HTTPRequest.Method)] = []
            var methods: Set<HTTPRequest.Method> = []
            for route in routes {
                guard let first = route.segments.first else {
                    methods.insert(route.method)
                    continue
                }
                let rest = (segments: route.segments.dropFirst(), method: route.method)
                if first.hasPrefix("{") { parameterRoutes.append(rest) } else { literalRoutes[first, default: []].append(rest) }
            }
            literals = literalRoutes.mapValues(Node.init)
            parameter = parameterRoutes.isEmpty ? nil : Node(parameterRoutes)
            self.methods = methods
        }

        func resolve(_ segments: ArraySlice<Substring>) -> Node? {
            guard let first = segments.first else { return self }
            for child in [literals[first], parameter].compactMap({ $0 }) {
                if segments.count == 1 { return child }
                if let found = child.resolve(segments.dropFirst()) { return found }
            }
            return nil
        }
    }

    private let root = Mutex<Node>(Node([]))

    func set(_ descriptions: [Router<GatewayRequestContext>.RouteDescription]) {
        let parsed = descriptions.map { (segments: ArraySlice($0.path.description.split(separator: "/")), method: $0.method) }
        root.withLock { $0 = Node(parsed) }
    }

    /// The methods of the route `path` lands on, in alphabetical order; empty if none.
    func methods(forPath path: String) -> [HTTPRequest.Method] {
        let node = root.withLock { $0 }
        let methods = node.resolve(ArraySlice(path.split(separator: "/")))?.methods ?? []
        return methods.sorted { $0.rawValue < $1.rawValue }
    }
}

/// Outermost gateway middleware: gives every request an id (adopted from `x-request-id` if the
/// client sent a sane one), makes it the task's `RequestScope` so every log line carries it,
/// turns every error into the contract's error body, and adds the id and security headers to
/// every response.
struct RequestEnvelopeMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext
    let routes: RouteTable
    let logger: Logger

    func handle(_ request: Request, context: Context, next: @concurrent (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let requestId = Self.adoptedRequestId(request.headers[.requestId]) ?? SortableID.make()
        context.requestId = requestId
        let started = ContinuousClock.now
        var response = await RequestScope.$current.withValue(RequestScope(requestId: requestId, traceId: context.clientTraceId)) {
            defer {
                logger.debug("request served", metadata: ["method": "\(request.method)", "path": "\(request.uri.path)", "duration": "\(ContinuousClock.now - started)"])
            }
            do {
                return try await next(request, context)
            } catch {
                let apiError = apiError(for: error, request: request, context: context)
                if apiError.status.code >= 500 {
                    // Unexpected failures are errors; a service being down is the health check's news.
                    let level: Logger.Level = error is APIError || error is RPCError ? .warning : .error
                    var metadata: Logger.Metadata = ["path": "\(request.uri.path)", "status": "\(apiError.status.code)", "message": "\(apiError.message)"]
                    // What went wrong stays in the log, never in the answer.
                    if level == .error { metadata["error"] = "\(String(reflecting: error))" }
                    logger.log(level: level, "request failed", metadata: metadata)
                }
                if OpenAIError.applies(toPath: request.uri.path) { return OpenAIError(apiError).response }
                return ResponseBody.error(apiError, requestId: requestId)
            }
        }
        response.headers[.requestId] = requestId
        Self.addSecurityHeaders(&response.headers, path: request.uri.path)
        return response
    }

    /// Accepts a client's id if it is 1–128 visible ASCII characters; otherwise makes a new one.
    static func adoptedRequestId(_ value: String?) -> String? {
        guard let value, (1...128).contains(value.utf8.count),
              value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
        return value
    }

    static func addSecurityHeaders(_ headers: inout HTTPFields, path: String) {
        headers[.xContentTypeOptions] = "nosniff"
        headers[.xFrameOptions] = "DENY"
        headers[.referrerPolicy] = "no-referrer"
        headers[.crossOriginOpenerPolicy] = "same-origin"
        if headers[.cacheControl] == nil { headers[.cacheControl] = "no-store" }
        if headers[.contentSecurityPolicy] == nil {
            headers[.contentSecurityPolicy] = "default-src 'none'; frame-ancestors 'none'"
        }
    }

    private func apiError(for error: any Error, request: Request, context: Context) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as RPCError:
            return APIError(error)
        case let error as HTTPError where error.status == .notFound && (context.endpointPath == nil || context.endpointPath == "NotFound"):
            let allowed = routes.methods(forPath: request.uri.path)
            if allowed.isEmpty {
                return APIError(.notFound, message: "no route for \(request.method) \(request.uri.path)")
            }
            let names = allowed.map(\.rawValue).joined(separator: ", ")
            return APIError(.methodNotAllowed, message: "\(request.method) is not allowed on \(request.uri.path); allowed: \(names)", headers: [.allow: names])
        case let error as HTTPError:
            return APIError(error.status, message: error.body ?? error.status.reasonPhrase)
        case is NIOTooManyBytesError:
            return APIError(.contentTooLarge, code: APIError.gatewayValidationCode, message: "request body is larger than \(context.maxUploadSize) bytes")
        case let error as HTTPParserError:
            // The body's framing (chunk sizes, length) is broken: the connection cannot go on.
            var apiError = GatewayHTTPChannel.apiError(error)
            apiError.headers[.connection] = "close"
            return apiError
        default:
            return APIError(.internalServerError, message: "internal error")
        }
    }
}

/// Lets a request through only with a valid, unrevoked `Authorization: Bearer` token: the
/// token's identity becomes the context's (hummingbird-auth's `AuthenticatorMiddleware`), and the
/// caller the request's scope for the services.
struct AuthenticationMiddleware: AuthenticatorMiddleware {
    typealias Context = GatewayRequestContext
    let tokens: AccessTokens
    let revocations: RevocationList
    let sync: RevocationSync
    /// How old the revocation list may be before tokens are refused (fail closed).
    let maxRevocationAge: Duration

    func handle(_ request: Request, context: Context, next: @concurrent (Request, Context) async throws -> Response) async throws -> Response {
        guard let identity = try await authenticate(request: request, context: context) else {
            throw APIError.unauthenticated("missing access token: send Authorization: Bearer <token>")
        }
        var context = context
        context.identity = identity
        let scope = RequestScope(requestId: context.requestId, userId: identity.userId, role: identity.role, traceId: context.clientTraceId)
        return try await RequestScope.$current.withValue(scope) {
            try await next(request, context)
        }
    }

    /// The bearer token's identity; a request without a valid one goes no further (401).
    func authenticate(request: Request, context: Context) async throws -> Identity? {
        try await sync.requireFresh(revocations, maxAge: maxRevocationAge, checking: "token")
        guard let header = request.headers[.authorization] else {
            throw APIError.unauthenticated("missing access token: send Authorization: Bearer <token>")
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw APIError.unauthenticated("malformed Authorization header: expected Bearer <token>")
        }
        var token = parts[1].drop(while: \.isWhitespace)
        while token.last?.isWhitespace == true { token.removeLast() }
        guard let identity = await tokens.verify(String(token)) else {
            throw APIError.unauthenticated("invalid, expired or revoked access token")
        }
        return identity
    }
}

/// Lets only admins through (after `AuthenticationMiddleware`): hummingbird-auth's role policy
/// on the context's identity.
func adminOnly() -> AuthorizationPolicyMiddleware<RolePolicy<Identity>, GatewayRequestContext, HTTPError> {
    AuthorizationPolicyMiddleware(RolePolicy(.admin), deniedError: HTTPError(.forbidden, message: "this route is for admins only"))
}

extension RevocationSync {
    /// Refreshes `revocations` if they may miss other replicas' revocations (older than `maxAge`);
    /// if they still do, credentials cannot be checked: 503, failing closed.
    func requireFresh(_ revocations: RevocationList, maxAge: Duration, checking credentials: String) async throws {
        guard revocations.isStale(maxAge: maxAge) else { return }
        try? await refresh()
        if revocations.isStale(maxAge: maxAge) {
            throw APIError(.serviceUnavailable, message: "\(credentials) revocations cannot be checked: the user service is unreachable")
        }
    }
}
