import Foundation
import Synchronization

/// The gateway's copy of revoked tokens: single tokens by id, and for a user every token issued
/// before a time. Filled by logouts on this replica at once and by polling the user service for
/// the other replicas' entries.
public final class RevocationList: Sendable {
    public enum Entry: Sendable, Equatable {
        case token(id: String, expiresAt: Date)
        /// Every token of the user issued before `notBefore`, or with a security stamp below
        /// `securityStamp` (0: none recorded).
        case user(id: String, notBefore: Date, expiresAt: Date, securityStamp: Int64 = 0)
        case apiKey(id: String, expiresAt: Date)
        /// Signing keys derived from this access key before `notBefore` are void.
        case accessKey(key: String, notBefore: Date, expiresAt: Date)
    }

    private struct State {
        var lastSynced: ContinuousClock.Instant?
        var clockOffset: TimeInterval = 0
        /// Recent (offset, round trip) measurements, oldest first.
        var clockSamples: [(offset: TimeInterval, roundTrip: TimeInterval)] = []
        var tokens: [String: Date] = [:]
        var users: [String: (notBefore: Date, expiresAt: Date, securityStamp: Int64)] = [:]
        var apiKeys: [String: Date] = [:]
        var accessKeys: [String: (notBefore: Date, expiresAt: Date)] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    public func add(_ entries: [Entry]) {
        state.withLock { state in
            for entry in entries {
                switch entry {
                case .token(let id, let expiresAt):
                    state.tokens[id] = expiresAt
                case .user(let id, let notBefore, let expiresAt, let stamp):
                    // The latest of each, whatever order the entries come in.
                    let known = state.users[id]
                    state.users[id] = (
                        max(notBefore, known?.notBefore ?? notBefore), max(expiresAt, known?.expiresAt ?? expiresAt),
                        max(stamp, known?.securityStamp ?? stamp)
                    )
                case .apiKey(let id, let expiresAt):
                    state.apiKeys[id] = expiresAt
                case .accessKey(let key, let notBefore, let expiresAt):
                    if let known = state.accessKeys[key], known.notBefore >= notBefore { continue }
                    state.accessKeys[key] = (notBefore, expiresAt)
                }
            }
        }
    }

    func isRevoked(_ identity: Identity) -> Bool {
        state.withLock { state in
            if state.tokens[identity.tokenId] != nil { return true }
            guard let user = state.users[identity.userId] else { return false }
            // The stamp settles a login that read the account before the change was written,
            // whatever the clocks say; tokens from before stamps have only their time. (`iat` is
            // written with sub-second precision, so a login right after the change works.)
            if let stamp = identity.securityStamp, stamp < user.securityStamp { return true }
            return identity.issuedAt <= user.notBefore
        }
    }

    enum APIKeyRevocation { case key, owner }

    /// What, if anything, was revoked since the user service checked an API key at `verifiedAt`
    /// (its clock), reading the owner's `ownerStamp`: the key itself, or its owner's tokens and
    /// keys (disabled, deleted, a new role or password), which only the user service can tell
    /// apart. The stamps settle it when both are known, whatever the replicas' clocks say (a
    /// check made after the change has the new stamp, one that read the row before it the old).
    func revocation(ofAPIKey id: String, userId: String, verifiedAt: Date, ownerStamp: Int64 = 0) -> APIKeyRevocation? {
        state.withLock { state in
            if state.apiKeys[id] != nil { return .key }
            guard let user = state.users[userId] else { return nil }
            if ownerStamp > 0, user.securityStamp > 0 { return ownerStamp < user.securityStamp ? .owner : nil }
            return user.notBefore >= verifiedAt ? .owner : nil
        }
    }

    /// Whether a signing key derived from `accessKey` at `derivedAt` for `userId` is void.
    func isRevoked(signingKeyOf accessKey: String, userId: String, derivedAt: Date) -> Bool {
        state.withLock { state in
            if let key = state.accessKeys[accessKey], key.notBefore >= derivedAt { return true }
            guard let user = state.users[userId] else { return false }
            return user.notBefore >= derivedAt
        }
    }

    /// Forgets entries whose tokens have expired anyway.
    public func purge(now: Date = Date()) {
        state.withLock { state in
            state.tokens = state.tokens.filter { $0.value > now }
            state.users = state.users.filter { $0.value.expiresAt > now }
            state.apiKeys = state.apiKeys.filter { $0.value > now }
            state.accessKeys = state.accessKeys.filter { $0.value.expiresAt > now }
        }
    }

    /// One measurement of how far the user service's clock is ahead of this process's: its time
    /// against the middle of the call that fetched it. The estimate is the measurement of the
    /// quickest of the last 30 calls (a slow call, such as the first one, which also connects,
    /// says little), and 0 while it is within that call's uncertainty (half its round trip), as
    /// on one host.
    func recordClockSample(offset: TimeInterval, roundTrip: TimeInterval) {
        guard offset.isFinite, roundTrip.isFinite, roundTrip >= 0 else { return }
        state.withLock { state in
            state.clockSamples.append((offset, roundTrip))
            if state.clockSamples.count > 30 { state.clockSamples.removeFirst() }
            guard let best = state.clockSamples.min(by: { $0.roundTrip < $1.roundTrip }) else { return }
            state.clockOffset = abs(best.offset) <= best.roundTrip / 2 ? 0 : best.offset
        }
    }

    /// Now, by the user service's clock: the time tokens are issued at and revocations compare with.
    public func serviceNow() -> Date {
        Date().addingTimeInterval(state.withLock { $0.clockOffset })
    }

    /// The latest time before which all of the user's tokens are revoked, if any.
    func notBefore(userId: String) -> Date? {
        state.withLock { $0.users[userId]?.notBefore }
    }

    /// Records a successful sync with the user service.
    public func markSynced() {
        state.withLock { $0.lastSynced = .now }
    }

    /// Whether the list may be missing other replicas' revocations: never synced, or not for `maxAge`.
    public func isStale(maxAge: Duration) -> Bool {
        state.withLock { state in
            guard let last = state.lastSynced else { return true }
            return ContinuousClock.now - last > maxAge
        }
    }

    public var count: Int { state.withLock { $0.tokens.count + $0.users.count + $0.apiKeys.count + $0.accessKeys.count } }
}
