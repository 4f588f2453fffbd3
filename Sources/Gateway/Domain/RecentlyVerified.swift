import Foundation
import Synchronization

/// Credentials whose signature or hash was already checked, so that a client sending the same
/// one again skips the work (HMAC and JSON for a token, a user-service call for an API key or a
/// signing key). The caller still checks expiry and revocation on every use.
///
/// Bounded: two generations of at most `capacity / 2` entries each. A hit in the older one moves
/// the entry to the newer; when the newer fills up, the older is dropped. Entries in use stay,
/// the rest age out, and no entry costs more than one lookup and one insert.
final class RecentlyVerified<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private struct Generations {
        var newer: [Key: Value] = [:]
        var older: [Key: Value] = [:]
    }

    private let generationSize: Int
    private let generations = Mutex(Generations())

    init(capacity: Int = 10_000) {
        generationSize = max(1, capacity / 2)
    }

    func value(for key: Key) -> Value? {
        generations.withLock { state in
            if let value = state.newer[key] { return value }
            guard let value = state.older.removeValue(forKey: key) else { return nil }
            Self.insert(key, value, into: &state, generationSize: generationSize)
            return value
        }
    }

    func remember(_ key: Key, as value: Value) {
        generations.withLock { Self.insert(key, value, into: &$0, generationSize: generationSize) }
    }

    /// Forgets every entry `shouldForget` picks (rare: a revocation made on this replica).
    func forget(where shouldForget: (Value) -> Bool) {
        generations.withLock { state in
            state.newer = state.newer.filter { !shouldForget($0.value) }
            state.older = state.older.filter { !shouldForget($0.value) }
        }
    }

    var count: Int {
        generations.withLock { $0.newer.count + $0.older.count }
    }

    private static func insert(_ key: Key, _ value: Value, into state: inout Generations, generationSize: Int) {
        if state.newer.count >= generationSize {
            state.older = state.newer
            state.newer = [:]
            state.newer.reserveCapacity(generationSize)
        }
        state.newer[key] = value
    }
}
