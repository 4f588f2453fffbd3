import Foundation
import Synchronization

/// Tokens whose signature and claims were already checked, so that a client sending the same
/// token again skips the HMAC and JSON work (a large part of an authenticated request's cost at
/// the gateway). Expiry and revocation are still checked on every request by the caller.
///
/// Bounded: two generations of at most `capacity / 2` entries each. A hit in the older one moves
/// the token to the newer; when the newer fills up, the older is dropped. Tokens in use stay,
/// the rest age out, and no token costs more than one lookup and one insert.
final class VerifiedTokenCache: Sendable {
    private struct Generations {
        var newer: [String: Identity] = [:]
        var older: [String: Identity] = [:]
    }

    private let generationSize: Int
    private let generations = Mutex(Generations())

    init(capacity: Int = 10_000) {
        generationSize = max(1, capacity / 2)
    }

    func identity(for token: String) -> Identity? {
        generations.withLock { state in
            if let identity = state.newer[token] { return identity }
            guard let identity = state.older.removeValue(forKey: token) else { return nil }
            Self.insert(token, identity, into: &state, generationSize: generationSize)
            return identity
        }
    }

    func remember(_ token: String, as identity: Identity) {
        generations.withLock { Self.insert(token, identity, into: &$0, generationSize: generationSize) }
    }

    var count: Int {
        generations.withLock { $0.newer.count + $0.older.count }
    }

    private static func insert(_ token: String, _ identity: Identity, into state: inout Generations, generationSize: Int) {
        if state.newer.count >= generationSize {
            state.older = state.newer
            state.newer = [:]
            state.newer.reserveCapacity(generationSize)
        }
        state.newer[token] = identity
    }
}
