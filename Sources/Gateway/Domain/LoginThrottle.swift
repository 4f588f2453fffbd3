import Foundation
import Platform
import Synchronization

/// Slows down password guessing: after too many failed logins for one username, or from one
/// client address, within a window, further attempts are refused until the oldest failure ages out.
/// Registrations from one address are counted the same way (each hashes a password, and each
/// reserves a username for good): past `registrationsPerAddress` in the window, they wait too.
public final class LoginThrottle: Sendable {
    public struct Limits: Sendable {
        public var perUsername: Int
        public var perAddress: Int
        public var window: TimeInterval
        public var registrationsPerAddress: Int

        public init(perUsername: Int = 5, perAddress: Int = 20, window: TimeInterval = 900, registrationsPerAddress: Int = 30) {
            self.perUsername = perUsername
            self.perAddress = perAddress
            self.window = window
            self.registrationsPerAddress = registrationsPerAddress
        }
    }

    /// The configuration center may change them; counted failures stay.
    public var limits: Limits { configured.current }
    private let configured: LiveSetting<Limits>
    private struct State {
        var failures: [String: [Date]] = [:]
        /// The size at which the next prune happens.
        var pruneAt: Int
    }

    private let state: Mutex<State>
    /// Past this many usernames and addresses, those whose failures are all old are dropped.
    let pruneAbove: Int
    /// Never more than this many: then the ones that failed longest ago go too. A spray from
    /// many addresses could push a username's count out this way, but not grow memory without
    /// bound or make every login scan the table.
    let maxKeys: Int

    public convenience init(limits: Limits) {
        self.init(limits: limits, pruneAbove: 10_000, maxKeys: 100_000)
    }

    init(limits: Limits, pruneAbove: Int, maxKeys: Int) {
        configured = LiveSetting(limits)
        self.pruneAbove = pruneAbove
        self.maxKeys = max(pruneAbove, maxKeys)
        state = Mutex(State(pruneAt: pruneAbove))
    }

    /// Usernames and addresses with failures counted.
    var trackedKeys: Int { state.withLock { $0.failures.count } }

    public func update(_ limits: Limits) {
        configured.replace(with: limits)
    }

    /// Starts a login attempt: returns how long the caller must wait, or nil if it may go ahead.
    /// An attempt that goes ahead counts as a failure until `succeeded` says otherwise, so that
    /// parallel guesses cannot all slip past the check while their passwords are being verified.
    public func begin(username: String, address: String?, now: Date = Date()) -> TimeInterval? {
        state.withLock { state in
            var wait: TimeInterval = 0
            for (key, limit) in keys(username: username, address: address) {
                let recent = (state.failures[key] ?? []).filter { now.timeIntervalSince($0) < limits.window }
                state.failures[key] = recent
                if recent.count >= limit, let oldest = recent.first {
                    wait = max(wait, limits.window - now.timeIntervalSince(oldest))
                }
            }
            if wait > 0 { return wait }
            for (key, _) in keys(username: username, address: address) {
                state.failures[key, default: []].append(now)
            }
            if state.failures.count > state.pruneAt {
                prune(&state.failures, now: now)
                state.pruneAt = min(maxKeys, max(pruneAbove, state.failures.count + state.failures.count / 10))
            }
            return nil
        }
    }

    /// Starts a registration from `address`: how long the caller must wait, or nil if it may go
    /// ahead (and is counted).
    public func beginRegistration(address: String?, now: Date) -> TimeInterval? {
        guard let address else { return nil }
        let key = "reg:" + address
        return state.withLock { state in
            let recent = (state.failures[key] ?? []).filter { now.timeIntervalSince($0) < limits.window }
            if recent.count >= limits.registrationsPerAddress, let oldest = recent.first {
                state.failures[key] = recent
                return limits.window - now.timeIntervalSince(oldest)
            }
            state.failures[key] = recent + [now]
            if state.failures.count > state.pruneAt {
                prune(&state.failures, now: now)
                state.pruneAt = min(maxKeys, max(pruneAbove, state.failures.count + state.failures.count / 10))
            }
            return nil
        }
    }

    /// The registration begun at `startedAt` never reached a user service (none answered): it
    /// does not count.
    public func registrationNotMade(address: String?, startedAt: Date) {
        guard let address else { return }
        state.withLock { state in
            if var recent = state.failures["reg:" + address], let index = recent.lastIndex(of: startedAt) {
                recent.remove(at: index)
                state.failures["reg:" + address] = recent
            }
        }
    }

    /// The attempt begun at `startedAt` succeeded: the username's failures are cleared and the
    /// attempt no longer counts against the address.
    public func succeeded(username: String, address: String?, startedAt: Date) {
        state.withLock { state in
            state.failures.removeValue(forKey: "user:" + username)
            if let address, var recent = state.failures["addr:" + address], let index = recent.lastIndex(of: startedAt) {
                recent.remove(at: index)
                state.failures["addr:" + address] = recent
            }
        }
    }

    /// Bounds memory under a spray of usernames: keys with no recent failure go; if more than
    /// `maxKeys` stay, those whose last failure is oldest go until a tenth of the room is free.
    /// The next prune waits until the table has grown by a tenth again (`pruneAt`), so logins
    /// do not each scan it.
    private func prune(_ failures: inout [String: [Date]], now: Date) {
        let window = limits.window
        failures = failures.filter { $0.value.contains { now.timeIntervalSince($0) < window } }
        if failures.count > maxKeys {
            let keep = maxKeys - maxKeys / 10
            let newestFirst = failures.sorted { ($0.value.last ?? .distantPast) > ($1.value.last ?? .distantPast) }
            failures = Dictionary(uniqueKeysWithValues: newestFirst.prefix(keep).map { ($0.key, $0.value) })
        }
    }

    private func keys(username: String, address: String?) -> [(String, Int)] {
        var keys = [("user:" + username, limits.perUsername)]
        if let address { keys.append(("addr:" + address, limits.perAddress)) }
        return keys
    }
}
