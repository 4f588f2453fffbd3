import Foundation
import Platform
import Synchronization

/// Slows down password guessing: after too many failed logins for one username, or from one
/// client address, within a window, further attempts are refused until the oldest failure ages out.
/// Registrations from one address are counted the same way (each hashes a password, and each
/// reserves a username for good): past `registrationsPerAddress` in the window, they wait too.
///
/// An address a user has logged in from (within `trustPeriod`) is known for that user: its
/// attempts are counted for the user and that address together, not for the username, so that
/// failures from elsewhere (anyone who knows a username could make them) do not lock the user out
/// where they usually log in. The per-address limit applies to every address alike.
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
        /// When each user last logged in from each address ("username NUL address").
        var knownAddresses: [String: Date] = [:]
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

    /// How long an address a user logged in from stays known for that user.
    static let trustPeriod: TimeInterval = 30 * 86_400

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
            let keys = keys(username: username, address: address, known: Self.isKnown(username: username, address: address, in: state, now: now))
            var wait: TimeInterval = 0
            for (key, limit) in keys {
                let recent = (state.failures[key] ?? []).filter { now.timeIntervalSince($0) < limits.window }
                state.failures[key] = recent
                if recent.count >= limit, let oldest = recent.first {
                    wait = max(wait, limits.window - now.timeIntervalSince(oldest))
                }
            }
            if wait > 0 { return wait }
            for (key, _) in keys {
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

    /// The attempt begun at `startedAt` succeeded: the username's failures are cleared, the
    /// attempt no longer counts against the address, and the address is known for the user.
    public func succeeded(username: String, address: String?, startedAt: Date) {
        state.withLock { state in
            state.failures.removeValue(forKey: "user:" + username)
            guard let address else { return }
            state.failures.removeValue(forKey: Self.knownKey(username: username, address: address, prefix: "user-addr:"))
            if var recent = state.failures["addr:" + address], let index = recent.lastIndex(of: startedAt) {
                recent.remove(at: index)
                state.failures["addr:" + address] = recent
            }
            state.knownAddresses[Self.knownKey(username: username, address: address)] = startedAt
            if state.knownAddresses.count > maxKeys {
                // Those not seen for the longest go first: a tenth of the room is made at once.
                let kept = state.knownAddresses.sorted { $0.value > $1.value }.prefix(maxKeys - maxKeys / 10)
                state.knownAddresses = Dictionary(uniqueKeysWithValues: kept.map { ($0.key, $0.value) })
            }
        }
    }

    /// Usernames and addresses known together.
    var knownAddressCount: Int { state.withLock { $0.knownAddresses.count } }

    private static func knownKey(username: String, address: String, prefix: String = "") -> String {
        prefix + username + "\u{0}" + address
    }

    private static func isKnown(username: String, address: String?, in state: State, now: Date) -> Bool {
        guard let address, let last = state.knownAddresses[knownKey(username: username, address: address)] else { return false }
        return now.timeIntervalSince(last) < trustPeriod
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

    /// The counts an attempt is checked against and added to: the username's (or, from an
    /// address known for the user, the user's at that address) and the address's.
    private func keys(username: String, address: String?, known: Bool) -> [(String, Int)] {
        guard let address else { return [("user:" + username, limits.perUsername)] }
        let user = known ? Self.knownKey(username: username, address: address, prefix: "user-addr:") : "user:" + username
        return [(user, limits.perUsername), ("addr:" + address, limits.perAddress)]
    }
}
