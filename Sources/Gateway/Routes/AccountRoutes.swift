import AISaaSProtos
import Foundation
import GRPCCore
import HTTPTypes
import Hummingbird
import Platform

/// `/auth` and `/user`: registration, login and logout, the caller's own account, and the admin
/// routes over all users.
struct AccountRoutes {
    let users: any Grpc_User_V1_UserService.ClientProtocol
    let tokens: AccessTokens
    let revocations: RevocationList
    let revocationSync: RevocationSync
    let throttle: LoginThrottle
    let trustForwardedFor: Bool
    let maxRevocationAge: Duration

    func register(on router: Router<GatewayRequestContext>) {
        router.post("/user/register", use: registerUser)
        router.put("/auth/login", use: login)

        let authenticated = router.group().add(middleware: AuthenticationMiddleware(
            tokens: tokens, revocations: revocations, sync: revocationSync, maxRevocationAge: maxRevocationAge
        ))
        authenticated.delete("/auth/logout", use: logout)
        authenticated.get("/user/current", use: current)
        authenticated.patch("/user/update", use: update)
        authenticated.patch("/user/update_keys", use: updateKeys)

        let admin = authenticated.group().add(middleware: adminOnly())
        admin.get("/user", use: list)
        admin.get("/user/{id}", use: user)
        admin.delete("/user/{id}", use: delete)
        admin.patch("/user/update_security", use: updateSecurity)
    }

    // MARK: - Public

    @Sendable func registerUser(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        var body = try await JSONBody.read(request, context: context)
        let username = body.username("username")
        let password = body.password("password", required: true)
        try body.finish()
        let (address, started) = (clientAddress(request, context: context), Date())
        if let wait = throttle.beginRegistration(address: address, now: started) {
            throw Self.throttled("too many registrations from this address", wait: wait)
        }
        let created: Grpc_User_V1_UserWithSecret
        do {
            created = try await users.registerUser(.with {
                $0.username = username ?? ""
                $0.password = password ?? ""
            })
        } catch let error as RPCError where error.code == .unavailable {
            throttle.registrationNotMade(address: address, startedAt: started)
            throw error
        }
        return try ResponseBody.success(RegisteredUser(created))
    }

    /// 429 with `Retry-After`: the throttle says how long to wait.
    static func throttled(_ what: String, wait: TimeInterval) -> APIError {
        let seconds = Int(wait.rounded(.up))
        return APIError(.tooManyRequests, message: "\(what); try again in \(seconds) s", headers: [.retryAfter: String(seconds)])
    }

    @Sendable func login(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        var body = try await JSONBody.read(request, context: context)
        let username = body.string("username", required: true, length: 1...50)
        let password = body.string("password", required: true, length: 1...128)
        try body.finish()
        guard let username, let password else { throw APIError.invalidBody([]) }

        let address = clientAddress(request, context: context)
        let started = Date()
        if let wait = throttle.begin(username: username, address: address, now: started) {
            throw Self.throttled("too many failed logins", wait: wait)
        }
        let user: Grpc_User_V1_UserModel
        do {
            user = try await retryingWhenUnavailable {
                try await users.verifyPassword(.with {
                    $0.username = username
                    $0.password = password
                })
            }
        } catch let error as RPCError where error.code == .unauthenticated {
            throw APIError.unauthenticated("invalid username or password")
        }
        throttle.succeeded(username: username, address: address, startedAt: started)
        let (token, identity) = try await tokens.issue(
            userId: user.id, username: user.username, role: user.role.platformRole, securityStamp: user.securityStamp, now: revocations.serviceNow()
        )
        return try ResponseBody.success(
            LoginResult(accessToken: token, tokenType: "Bearer", expiresAt: Int64(identity.expiresAt.millisecondsSince1970))
        )
    }

    // MARK: - The caller's account

    @Sendable func logout(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        // Recorded in the user service first, so that a failure can be retried with the same
        // token; then refused here at once. The other replicas learn it from their next poll.
        _ = try await users.revokeToken(.with {
            $0.kind = .token
            $0.subject = identity.tokenId
            $0.expiresAt = identity.expiresAt.millisecondsSince1970
        })
        revocations.add([.token(id: identity.tokenId, expiresAt: identity.expiresAt)])
        return try ResponseBody.empty()
    }

    @Sendable func current(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        return try ResponseBody.success(UserProfile(try await ownAccount(identity)))
    }

    @Sendable func update(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        var body = try await JSONBody.read(request, context: context)
        let avatar = body.string("avatar", required: false, length: 0...2048)
        let password = body.password("password", required: false)
        try body.finish()
        if avatar != nil || password != nil {
            do {
                _ = try await users.updateUser(.with {
                    $0.id = identity.userId
                    if let avatar { $0.avatar = avatar }
                    if let password { $0.password = password }
                })
            } catch let error as RPCError where error.code == .notFound {
                throw APIError.unauthenticated("the account of this token no longer exists")
            }
        }
        let account = try await ownAccount(identity)
        let profile = UserProfile(account)
        guard password != nil else { return try ResponseBody.success(profile) }
        // The new password revoked every token of the user, this one too: take the revocation in
        // and answer a token issued after it, so that this client goes on. The new token says what
        // the account is now, not what the old token said: an admin demoted (or an account
        // disabled) on another replica a moment ago must not come out of this with a fresh token
        // newer than that revocation.
        guard account.status == .enable else { throw APIError.forbidden("this account is disabled") }
        await revocationSync.refreshAfterChange()
        let notBefore = revocations.notBefore(userId: identity.userId) ?? .distantPast
        let now = max(revocations.serviceNow(), notBefore.addingTimeInterval(0.001))
        let (token, fresh) = try await tokens.issue(
            userId: account.id, username: account.username, role: account.role.platformRole, securityStamp: account.securityStamp, now: now
        )
        return try ResponseBody.success(ProfileWithToken(
            profile: profile,
            session: LoginResult(accessToken: token, tokenType: "Bearer", expiresAt: Int64(fresh.expiresAt.millisecondsSince1970))
        ))
    }

    @Sendable func updateKeys(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let rotated: Grpc_User_V1_UserWithSecret
        do {
            rotated = try await users.rotateKeys(.with { $0.id = identity.userId })
        } catch let error as RPCError where error.code == .notFound {
            throw APIError.unauthenticated("the account of this token no longer exists")
        }
        // The old access key's cached signing keys go on this replica at once, as on the others
        // within the revocation interval.
        await revocationSync.refreshAfterChange()
        return try ResponseBody.success(KeyPair(accessKey: rotated.user.accessKey, secretKey: rotated.secretKey))
    }

    // MARK: - Admin

    @Sendable func list(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let page = try PageQuery(request)
        let result = try await retryingWhenUnavailable {
            try await users.listUsers(.with {
                $0.current = Int32(page.current)
                $0.pageSize = Int32(page.pageSize)
            })
        }
        return try ResponseBody.success(ListPage(
            results: result.results.map(UserProfile.init),
            pagination: PageInfo(current: Int(result.pagination.current), pageSize: Int(result.pagination.pageSize), total: Int(result.pagination.total))
        ))
    }

    @Sendable func user(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let id = try Identifier.path("id", context, notFound: "user")
        return try ResponseBody.success(UserProfile(try await retryingWhenUnavailable { try await users.getUserById(.with { $0.id = id }) }))
    }

    @Sendable func delete(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let id = try Identifier.path("id", context, notFound: "user")
        if id == identity.userId { throw APIError.forbidden("admins cannot delete their own account") }
        _ = try await users.deleteUser(.with { $0.id = id })
        await revocationSync.refreshAfterChange()
        return try ResponseBody.empty()
    }

    @Sendable func updateSecurity(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        var body = try await JSONBody.read(request, context: context)
        let id = body.string("id", required: true, length: 1...64)
        let role: Grpc_User_V1_UserRolesEnum? = body.choice("role", [("admin", 0, .admin), ("user", 1, .user)])
        let status: Grpc_User_V1_UserStatusEnum? = body.choice("status", [("disable", 0, .disable), ("enable", 1, .enable)])
        try body.finish()
        guard let id else { throw APIError.invalidBody([]) }
        if id == identity.userId && (role != nil || status != nil) {
            throw APIError.forbidden("admins cannot change their own role or status")
        }
        _ = try await users.updateUser(.with {
            $0.id = id
            if let role { $0.role = role }
            if let status { $0.status = status }
        })
        // The change revoked the user's tokens in the user service; take that in before answering.
        await revocationSync.refreshAfterChange()
        return try ResponseBody.success(UserProfile(try await retryingWhenUnavailable { try await users.getUserById(.with { $0.id = id }) }))
    }

    // MARK: - Helpers

    /// The caller's own record; a token whose account is gone is no longer valid (401).
    private func ownAccount(_ identity: Identity) async throws -> Grpc_User_V1_UserModel {
        do {
            return try await retryingWhenUnavailable { try await users.getUserById(.with { $0.id = identity.userId }) }
        } catch let error as RPCError where error.code == .notFound {
            throw APIError.unauthenticated("the account of this token no longer exists")
        }
    }

    private func clientAddress(_ request: Request, context: GatewayRequestContext) -> String? {
        // The right-most entry is the one the trusted proxy added; those before it are the client's word.
        if trustForwardedFor, let forwarded = request.headers[HTTPField.Name("X-Forwarded-For")!] {
            let last = forwarded.split(separator: ",").last.map { $0.trimmingCharacters(in: .whitespaces) }
            if let last, !last.isEmpty { return last }
        }
        return context.peerAddress
    }
}
