import GRPCCore
import Synchronization

/// A lookup that cannot tell yet (a registry not read once): calls wait for the first answer,
/// as long as their deadline allows, instead of failing as if no instance were registered.
public struct EndpointsNotYetKnown: Error, CustomStringConvertible {
    public let reason: String

    public init(reason: String) {
        self.reason = reason
    }

    public var description: String { reason }
}

/// Whether a pushed set of instances (a registry, DNS) has any, as its client's resolver last
/// found. grpc-swift ignores an empty set and keeps a call waiting for a connection for as long
/// as it has none, without a deadline: a call to a service with no instance registered, or whose
/// name never resolved, would hang. The client's transport asks this first and fails such a call
/// at once, UNAVAILABLE with the reason.
public final class EndpointAvailability: Sendable {
    public enum State: Sendable, Equatable {
        /// No lookup has finished yet.
        case unknown
        case available
        case unavailable(String)
    }

    private struct Storage {
        var state = State.unknown
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
    }

    private let storage = Mutex(Storage())

    public init() {}

    public var state: State { storage.withLock { $0.state } }

    /// What a lookup found: `addresses` nil when it failed with `failure`.
    func record(instances count: Int?, failure: (any Error)? = nil) {
        let waiters = storage.withLock { storage -> [CheckedContinuation<Void, Never>] in
            switch (count, storage.state) {
            case (let count?, _):
                storage.state = count > 0 ? .available : .unavailable("no instance is registered")
            case (nil, .available):
                // A failed lookup keeps the set the client has.
                break
            case (nil, .unknown) where failure is EndpointsNotYetKnown:
                // Still waiting for the first answer: the waiters keep waiting.
                return []
            case (nil, _):
                storage.state = .unavailable("its instances cannot be looked up: \(failure.map { "\($0)" } ?? "unknown error")")
            }
            defer { storage.waiters = [:] }
            return Array(storage.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Why a call cannot be made now (nil: it can), waiting up to `limit` for the first lookup.
    func unavailableReason(waitingAtMost limit: Duration) async -> String? {
        if case .unknown = state {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.firstLookup() }
                group.addTask { try? await Task.sleep(for: limit) }
                await group.next()
                group.cancelAll()
            }
        }
        switch state {
        case .available: return nil
        case .unavailable(let reason): return reason
        case .unknown: return "its instances are still being looked up"
        }
    }

    private func firstLookup() async {
        let id = storage.withLock { storage in
            defer { storage.nextWaiter += 1 }
            return storage.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let waiting = storage.withLock { storage in
                    guard case .unknown = storage.state, !Task.isCancelled else { return false }
                    storage.waiters[id] = continuation
                    return true
                }
                if !waiting { continuation.resume() }
            }
        } onCancel: {
            storage.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}
