import Foundation
import GRPCCore
import JWTKit
import NIOCore
import Platform
import Testing
@testable import Gateway

@Suite("gateway domain")
struct GatewayDomainTests {
    @Test("the login throttle counts attempts per username and per address, refuses past the limit, then lets go")
    func throttle() {
        let throttle = LoginThrottle(limits: .init(perUsername: 2, perAddress: 3, window: 60))
        let start = Date(timeIntervalSince1970: 1_000_000)
        #expect(throttle.begin(username: "a", address: "1.1.1.1", now: start) == nil)
        #expect(throttle.begin(username: "a", address: "1.1.1.1", now: start.addingTimeInterval(10)) == nil)
        // Two attempts in flight or failed: the third for "a" waits until the first ages out.
        #expect(throttle.begin(username: "a", address: "9.9.9.9", now: start.addingTimeInterval(20)) == 40)
        #expect(throttle.begin(username: "b", address: "9.9.9.9", now: start.addingTimeInterval(20)) == nil)
        #expect(throttle.begin(username: "c", address: "1.1.1.1", now: start.addingTimeInterval(20)) == nil)
        #expect(throttle.begin(username: "d", address: "1.1.1.1", now: start.addingTimeInterval(30)) != nil)
        #expect(throttle.begin(username: "a", address: nil, now: start.addingTimeInterval(61)) == nil)
    }

    @Test("a successful login clears the username and does not count against the address")
    func throttleSuccess() {
        let throttle = LoginThrottle(limits: .init(perUsername: 1, perAddress: 1, window: 60))
        let start = Date(timeIntervalSince1970: 1_000_000)
        #expect(throttle.begin(username: "a", address: "1.1.1.1", now: start) == nil)
        throttle.succeeded(username: "a", address: "1.1.1.1", startedAt: start)
        #expect(throttle.begin(username: "a", address: "1.1.1.1", now: start.addingTimeInterval(1)) == nil)
    }

    @Test("failures from elsewhere do not lock a user out of an address they logged in from, which is still limited on its own")
    func throttleKnownAddresses() {
        let throttle = LoginThrottle(limits: .init(perUsername: 3, perAddress: 100, window: 60))
        let start = Date(timeIntervalSince1970: 1_000_000)
        #expect(throttle.begin(username: "alice", address: "10.0.0.1", now: start) == nil)
        throttle.succeeded(username: "alice", address: "10.0.0.1", startedAt: start)
        // Someone who knows the username fails three times from another address: alice is locked
        // for every address but the one she logs in from.
        for second in 1...3 {
            #expect(throttle.begin(username: "alice", address: "203.0.113.9", now: start.addingTimeInterval(Double(second))) == nil)
        }
        #expect(throttle.begin(username: "alice", address: "203.0.113.9", now: start.addingTimeInterval(4)) != nil)
        #expect(throttle.begin(username: "alice", address: "198.51.100.1", now: start.addingTimeInterval(4)) != nil)
        #expect(throttle.begin(username: "alice", address: nil, now: start.addingTimeInterval(4)) != nil)
        #expect(throttle.begin(username: "alice", address: "10.0.0.1", now: start.addingTimeInterval(5)) == nil)
        // Guessing from her address is limited all the same (this attempt and two more fail).
        #expect(throttle.begin(username: "alice", address: "10.0.0.1", now: start.addingTimeInterval(6)) == nil)
        #expect(throttle.begin(username: "alice", address: "10.0.0.1", now: start.addingTimeInterval(7)) == nil)
        #expect(throttle.begin(username: "alice", address: "10.0.0.1", now: start.addingTimeInterval(8)) != nil)
        // Another user is not helped by alice's address.
        for second in 0..<3 { _ = throttle.begin(username: "bob", address: "203.0.113.9", now: start.addingTimeInterval(10 + Double(second))) }
        #expect(throttle.begin(username: "bob", address: "10.0.0.1", now: start.addingTimeInterval(13)) != nil)
        // Past the trust period the address is a stranger again.
        let later = start.addingTimeInterval(LoginThrottle.trustPeriod + 100)
        for second in 0..<3 { #expect(throttle.begin(username: "alice", address: "203.0.113.9", now: later.addingTimeInterval(Double(second))) == nil) }
        #expect(throttle.begin(username: "alice", address: "10.0.0.1", now: later.addingTimeInterval(3)) != nil)

        // The addresses known are bounded, the ones seen longest ago dropped first.
        let bounded = LoginThrottle(limits: .init(), pruneAbove: 50, maxKeys: 200)
        for index in 0..<1_000 {
            bounded.succeeded(username: "user\(index)", address: "192.0.2.1", startedAt: start.addingTimeInterval(Double(index)))
            #expect(bounded.knownAddressCount <= 200)
        }
        for second in 0..<5 { _ = bounded.begin(username: "user999", address: "203.0.113.9", now: start.addingTimeInterval(2_000 + Double(second))) }
        #expect(bounded.begin(username: "user999", address: "192.0.2.1", now: start.addingTimeInterval(2_010)) == nil, "the newest was dropped")
    }

    @Test("a spray of usernames from many addresses cannot grow the throttle's table past its bound, and old failures go first")
    func throttleBounded() {
        let throttle = LoginThrottle(limits: .init(perUsername: 5, perAddress: 20, window: 900), pruneAbove: 50, maxKeys: 200)
        let start = Date(timeIntervalSince1970: 1_000_000)
        // The victim's failures come first, then 1,000 attempts each with a username and an
        // address of their own, all within the window (nothing ages out by time).
        for second in 0..<5 {
            #expect(throttle.begin(username: "victim", address: "10.0.0.1", now: start.addingTimeInterval(Double(second))) == nil)
        }
        #expect(throttle.begin(username: "victim", address: "10.0.0.2", now: start.addingTimeInterval(5)) != nil)
        for index in 0..<1_000 {
            _ = throttle.begin(username: "spray\(index)", address: "2001:db8::\(index)", now: start.addingTimeInterval(10 + Double(index) / 100))
            #expect(throttle.trackedKeys <= 200)
        }
        // The newest attempts are still counted: a sprayed username is refused at its limit.
        let late = start.addingTimeInterval(30)
        for _ in 0..<4 { _ = throttle.begin(username: "spray999", address: "192.0.2.\(Int.random(in: 1...250))", now: late) }
        #expect(throttle.begin(username: "spray999", address: "198.51.100.7", now: late) != nil)
        // Past the bound, the failures of longest ago were the ones dropped.
        #expect(throttle.begin(username: "victim", address: "10.0.0.3", now: late) == nil)
    }

    @Test("a /v1 stream event whose data has line breaks goes out as one event of several data lines")
    func multiLineStreamEvent() {
        #expect(String(buffer: OpenAIStreamRelay.event(Data(#"{"a":1}"#.utf8))) == "data: {\"a\":1}\n\n")
        #expect(String(buffer: OpenAIStreamRelay.event(Data("{\"a\":1,\n\"b\":2}".utf8))) == "data: {\"a\":1,\ndata: \"b\":2}\n\n")
    }

    @Test("tokens are revoked one by one, or for a user up to a time")
    func revocations() {
        let list = RevocationList()
        let now = Date()
        let token = Identity(userId: "u1", username: "a", role: .user, tokenId: "t1", issuedAt: now, expiresAt: now + 60)
        #expect(!list.isRevoked(token))
        list.add([.token(id: "t1", expiresAt: now + 60)])
        #expect(list.isRevoked(token))

        let older = Identity(userId: "u2", username: "b", role: .user, tokenId: "t2", issuedAt: now - 10, expiresAt: now + 60)
        let newer = Identity(userId: "u2", username: "b", role: .user, tokenId: "t3", issuedAt: now + 1, expiresAt: now + 60)
        list.add([.user(id: "u2", notBefore: now, expiresAt: now + 600)])
        #expect(list.isRevoked(older) && !list.isRevoked(newer))
        list.purge(now: now + 601)
        #expect(list.count == 0)
    }

    @Test("an API key's owner changed when its stamp is below the owner's, whatever the clocks; without stamps, by time")
    func apiKeyOwnerStamps() {
        let list = RevocationList()
        let now = Date()
        list.add([.user(id: "u1", notBefore: now, expiresAt: now + 600, securityStamp: 2)])
        // Checked by a replica whose clock lags the one that wrote the change: its stamp is current.
        #expect(list.revocation(ofAPIKey: "k1", userId: "u1", verifiedAt: now - 5, ownerStamp: 2) == nil)
        // Checked before the change, whatever the time says.
        #expect(list.revocation(ofAPIKey: "k1", userId: "u1", verifiedAt: now + 5, ownerStamp: 1) == .owner)
        // No stamp known: the time decides.
        #expect(list.revocation(ofAPIKey: "k1", userId: "u1", verifiedAt: now - 5) == .owner)
        #expect(list.revocation(ofAPIKey: "k1", userId: "u1", verifiedAt: now + 5) == nil)
        #expect(list.revocation(ofAPIKey: "k1", userId: "other", verifiedAt: now - 5, ownerStamp: 1) == nil)
        list.add([.apiKey(id: "k1", expiresAt: now + 600)])
        #expect(list.revocation(ofAPIKey: "k1", userId: "u1", verifiedAt: now + 5, ownerStamp: 2) == .key)
    }

    @Test("a token issued with a stamp below its user's revocation is refused, however late it was issued")
    func securityStampRevokes() async throws {
        let list = RevocationList()
        let tokens = await AccessTokens(secret: String(repeating: "k", count: 40), lifetime: 60, revocations: list)
        // A login read the account (stamp 1) before a password change was written (stamp 2), and
        // its token was issued after the change's time.
        list.add([.user(id: "u1", notBefore: Date() - 5, expiresAt: Date() + 600, securityStamp: 2)])
        let raced = try await tokens.issue(userId: "u1", username: "alice", role: .admin, securityStamp: 1).token
        #expect(await tokens.verify(raced) == nil)
        let current = try await tokens.issue(userId: "u1", username: "alice", role: .user, securityStamp: 2).token
        #expect(await tokens.verify(current) != nil)
        // Entries merge to the latest of each, in whatever order they come.
        list.add([.user(id: "u1", notBefore: Date() - 2, expiresAt: Date() + 600, securityStamp: 1)])
        #expect(await tokens.verify(raced) == nil)
        #expect(await tokens.verify(current) != nil)
        // A token from before stamps is judged by its time only.
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: String(repeating: "k", count: 40)), digestAlgorithm: .sha256)
        func legacy(issuedAt: Date) async throws -> String {
            try await keys.sign(AccessTokenClaims(
                sub: SubjectClaim(value: "u1"), name: "alice", role: "user", jti: IDClaim(value: SortableID.make()),
                iat: IssuedAtClaim(value: issuedAt), exp: ExpirationClaim(value: Date() + 60)
            ))
        }
        #expect(await tokens.verify(try await legacy(issuedAt: Date())) != nil)
        #expect(await tokens.verify(try await legacy(issuedAt: Date() - 3)) == nil)
    }

    @Test("issued tokens verify; others do not")
    func accessTokens() async throws {
        let list = RevocationList()
        let tokens = await AccessTokens(secret: String(repeating: "k", count: 40), lifetime: 60, revocations: list)
        let (token, identity) = try await tokens.issue(userId: "u1", username: "alice", role: .admin, securityStamp: 0)
        let verified = try #require(await tokens.verify(token))
        #expect(verified.userId == "u1" && verified.tokenId == identity.tokenId && verified.username == "alice")
        #expect(abs(verified.expiresAt.timeIntervalSince(identity.expiresAt)) < 0.001)
        #expect(identity.isAdmin)
        let parts = token.split(separator: ".")
        let noneHeader = Data(#"{"alg":"HS512","typ":"JWT"}"#.utf8).base64EncodedString()
            .replacingOccurrences(of: "=", with: "").replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        #expect(await tokens.verify([Substring(noneHeader), parts[1], parts[2]].joined(separator: ".")) == nil)
        let other = await AccessTokens(secret: String(repeating: "j", count: 40), lifetime: 60, revocations: list)
        #expect(await other.verify(token) == nil)
        let stale = try await tokens.issue(userId: "u1", username: "alice", role: .admin, securityStamp: 0, now: Date() - 120).token
        #expect(await tokens.verify(stale) == nil)
    }

    @Test("a token signed with the right key but a role the platform does not know makes no identity")
    func unknownRoleClaim() async throws {
        let secret = String(repeating: "k", count: 40)
        let tokens = await AccessTokens(secret: secret, lifetime: 60, revocations: RevocationList())
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        for role in ["superuser", "Admin", "", "user", "admin"] {
            let claims = AccessTokenClaims(
                sub: SubjectClaim(value: "u1"), name: "alice", role: role, jti: IDClaim(value: SortableID.make()),
                iat: IssuedAtClaim(value: Date()), exp: ExpirationClaim(value: Date() + 60)
            )
            let verified = await tokens.verify(try await keys.sign(claims))
            #expect(verified?.role.rawValue == (Role(rawValue: role) == nil ? nil : role), "\(role)")
        }
    }

    @Test("a token verified before is still checked for expiry, revocation and its exact signature")
    func verifiedTokensAreRecheckedOnEveryUse() async throws {
        let list = RevocationList()
        let tokens = await AccessTokens(secret: String(repeating: "k", count: 40), lifetime: 60, revocations: list)
        let (token, identity) = try await tokens.issue(userId: "u1", username: "alice", role: .user, securityStamp: 0)
        // Twice: the second answer comes from the cache of verified tokens.
        for _ in 0..<2 {
            let verified = await tokens.verify(token)
            #expect(verified?.tokenId == identity.tokenId && verified?.userId == "u1")
        }
        // Another signature on the same header and claims is not the token that was verified.
        let parts = token.split(separator: ".")
        let forged = [parts[0], parts[1], Substring(String(parts[2].reversed()))].joined(separator: ".")
        #expect(await tokens.verify(forged) == nil)
        #expect(await tokens.verify(token, now: identity.expiresAt + 1) == nil)
        list.add([.token(id: identity.tokenId, expiresAt: identity.expiresAt)])
        #expect(await tokens.verify(token) == nil)
    }

    @Test("the cache of verified tokens keeps the ones in use and stays within its size")
    func verifiedTokenCacheIsBounded() {
        let cache = RecentlyVerified<String, Identity>(capacity: 4)
        let now = Date()
        func identity(_ id: String) -> Identity {
            Identity(userId: id, username: id, role: .user, tokenId: id, issuedAt: now, expiresAt: now + 60)
        }
        for index in 0..<10 {
            cache.remember("token-\(index)", as: identity("\(index)"))
            // token-0 is in use all along.
            #expect(cache.value(for: "token-0")?.userId == "0")
            #expect(cache.count <= 4)
        }
        #expect(cache.value(for: "token-1") == nil)
        #expect(cache.value(for: "token-9")?.userId == "9")
    }

    @Test("gRPC statuses map to the contract's HTTP statuses", arguments: [
        (RPCError.Code.cancelled, 499), (.unknown, 502), (.invalidArgument, 422), (.deadlineExceeded, 504),
        (.notFound, 404), (.alreadyExists, 409), (.permissionDenied, 403), (.resourceExhausted, 429),
        (.failedPrecondition, 412), (.aborted, 409), (.outOfRange, 400), (.unimplemented, 501),
        (.internalError, 500), (.unavailable, 503), (.dataLoss, 500), (.unauthenticated, 401),
    ])
    func statusMap(code: RPCError.Code, status: Int) {
        #expect(APIError.httpStatus(for: code).code == status)
    }

    @Test("a service's validation error keeps its fields, service name and code 601")
    func serviceValidation() throws {
        var metadata: Metadata = [:]
        metadata.addString("user-service", forKey: MetadataKey.errorApplication)
        metadata.addString(#"[{"property":"username","constraints":["too short"]}]"#, forKey: MetadataKey.errorViolations)
        let error = APIError(RPCError(code: .invalidArgument, message: "invalid fields: username", metadata: metadata))
        #expect(error.status.code == 422 && error.code == 601 && error.application == "user-service")
        #expect(error.meta == [FieldViolation(property: "username", constraints: ["too short"])])
        let unreachable = APIError(RPCError(code: .unavailable, message: "connection refused"))
        #expect(unreachable.status.code == 503 && unreachable.application == "gateway")
    }

    @Test("a client's request id is adopted only when it is sane")
    func requestIds() {
        #expect(RequestEnvelopeMiddleware.adoptedRequestId("abc-123") == "abc-123")
        #expect(RequestEnvelopeMiddleware.adoptedRequestId("") == nil)
        #expect(RequestEnvelopeMiddleware.adoptedRequestId("has space") == nil)
        #expect(RequestEnvelopeMiddleware.adoptedRequestId(String(repeating: "a", count: 129)) == nil)
    }
}

@Suite("gateway: the user service's clock")
struct ServiceClockTests {
    @Test("the quickest call's measurement wins; a skew within its uncertainty counts as none")
    func estimate() {
        let list = RevocationList()
        #expect(abs(list.serviceNow().timeIntervalSinceNow) < 0.5)
        list.recordClockSample(offset: 0.004, roundTrip: 0.010)
        #expect(abs(list.serviceNow().timeIntervalSinceNow) < 0.5)
        // The user service's clock runs five seconds ahead; a slow call's reading is ignored.
        list.recordClockSample(offset: 9, roundTrip: 2)
        list.recordClockSample(offset: 5, roundTrip: 0.002)
        #expect(abs(list.serviceNow().timeIntervalSinceNow - 5) < 0.5)
    }

    @Test("tokens are stamped in the user service's time, so a revocation it records covers every token issued before it")
    func revocationsCompareInOneClock() async throws {
        let list = RevocationList()
        list.markSynced()
        // This gateway's clock runs 3 s ahead of the user service's.
        list.recordClockSample(offset: -3, roundTrip: 0.001)
        let tokens = await AccessTokens(secret: testJWTSecret, lifetime: 3600, revocations: list)
        let (token, _) = try await tokens.issue(userId: "u1", username: "u", role: .user, securityStamp: 0, now: list.serviceNow())
        // The user service disables the user now, by its own clock.
        list.add([.user(id: "u1", notBefore: Date().addingTimeInterval(-3 + 0.01), expiresAt: Date().addingTimeInterval(3600))])
        #expect(await tokens.verify(token) == nil)
    }
}
