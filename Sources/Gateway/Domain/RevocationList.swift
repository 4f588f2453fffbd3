import Foundation
import Synchronization

/// The gateway's copy of revoked tokens: single tokens by id, and for a user every token issued
/// before a time. Filled by logouts on this replica at once and by polling the user service for
/// the other replicas' entries.
public final class RevocationList: Sendable {
    public enum Entry: Sendable, Equatable {
        case token(id: String, expiresAt: Date)
        case user(id: String, notBefore: Date, expiresAt: Date)
    }

    private struct State {
        var lastSynced: ContinuousClock.Instant?
        var tokens: [String: Date] = [:]
        var users: [String: (notBefore: Date, expiresAt: Date)] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    public func add(_ entries: [Entry]) {
        state.withLock { state in
            for entry in entries {
                switch entry {
                case .token(let id, let expiresAt):
                    state.tokens[id] = expiresAt
                case .user(let id, let notBefore, let expiresAt):
                    if let known = state.users[id], known.notBefore >= notBefore { continue }
                    state.users[id] = (notBefore, expiresAt)
                }
            }
        }
    }

    func isRevoked(_ identity: Identity) -> Bool {
        state.withLock { state in
            if state.tokens[identity.tokenId] != nil { return true }
            guard let user = state.users[identity.userId] else { return false }
            // `iat` is written with sub-second precision, so a login right after the change works.
            return identity.issuedAt <= user.notBefore
        }
    }

    /// Forgets entries whose tokens have expired anyway.
    public func purge(now: Date = Date()) {
        state.withLock { state in
            state.tokens = state.tokens.filter { $0.value > now }
            state.users = state.users.filter { $0.value.expiresAt > now }
        }
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

    public var count: Int { state.withLock { $0.tokens.count + $0.users.count } }
}
