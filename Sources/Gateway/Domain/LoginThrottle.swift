import Foundation
import Platform
import Synchronization

/// Slows down password guessing: after too many failed logins for one username, or from one
/// client address, within a window, further attempts are refused until the oldest failure ages out.
public final class LoginThrottle: Sendable {
    public struct Limits: Sendable {
        public var perUsername: Int
        public var perAddress: Int
        public var window: TimeInterval

        public init(perUsername: Int = 5, perAddress: Int = 20, window: TimeInterval = 900) {
            self.perUsername = perUsername
            self.perAddress = perAddress
            self.window = window
        }
    }

    /// The configuration center may change them; counted failures stay.
    public var limits: Limits { configured.current }
    private let configured: LiveSetting<Limits>
    private let failures = Mutex<[String: [Date]]>([:])

    public init(limits: Limits) {
        configured = LiveSetting(limits)
    }

    public func update(_ limits: Limits) {
        configured.replace(with: limits)
    }

    /// Starts a login attempt: returns how long the caller must wait, or nil if it may go ahead.
    /// An attempt that goes ahead counts as a failure until `succeeded` says otherwise, so that
    /// parallel guesses cannot all slip past the check while their passwords are being verified.
    public func begin(username: String, address: String?, now: Date = Date()) -> TimeInterval? {
        failures.withLock { failures in
            var wait: TimeInterval = 0
            for (key, limit) in keys(username: username, address: address) {
                let recent = (failures[key] ?? []).filter { now.timeIntervalSince($0) < limits.window }
                failures[key] = recent
                if recent.count >= limit, let oldest = recent.first {
                    wait = max(wait, limits.window - now.timeIntervalSince(oldest))
                }
            }
            if wait > 0 { return wait }
            for (key, _) in keys(username: username, address: address) {
                failures[key, default: []].append(now)
            }
            // Bound memory under a spray of usernames: drop keys with no recent failure.
            if failures.count > 10_000 {
                failures = failures.filter { $0.value.contains { now.timeIntervalSince($0) < limits.window } }
            }
            return nil
        }
    }

    /// The attempt begun at `startedAt` succeeded: the username's failures are cleared and the
    /// attempt no longer counts against the address.
    public func succeeded(username: String, address: String?, startedAt: Date) {
        failures.withLock { failures in
            failures.removeValue(forKey: "user:" + username)
            if let address, var recent = failures["addr:" + address], let index = recent.lastIndex(of: startedAt) {
                recent.remove(at: index)
                failures["addr:" + address] = recent
            }
        }
    }

    private func keys(username: String, address: String?) -> [(String, Int)] {
        var keys = [("user:" + username, limits.perUsername)]
        if let address { keys.append(("addr:" + address, limits.perAddress)) }
        return keys
    }
}
