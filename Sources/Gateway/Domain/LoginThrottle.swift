import Foundation
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

    public let limits: Limits
    private let failures = Mutex<[String: [Date]]>([:])

    public init(limits: Limits) {
        self.limits = limits
    }

    /// How long the caller must wait, or nil if the attempt may go ahead.
    public func retryAfter(username: String, address: String?, now: Date = Date()) -> TimeInterval? {
        failures.withLock { failures in
            var wait: TimeInterval = 0
            for (key, limit) in keys(username: username, address: address) {
                let recent = (failures[key] ?? []).filter { now.timeIntervalSince($0) < limits.window }
                if recent.count >= limit, let oldest = recent.first {
                    wait = max(wait, limits.window - now.timeIntervalSince(oldest))
                }
            }
            return wait > 0 ? wait : nil
        }
    }

    public func recordFailure(username: String, address: String?, now: Date = Date()) {
        failures.withLock { failures in
            for (key, limit) in keys(username: username, address: address) {
                var recent = (failures[key] ?? []).filter { now.timeIntervalSince($0) < limits.window }
                recent.append(now)
                failures[key] = Array(recent.suffix(limit))
            }
            // Bound memory under a spray of usernames: drop keys with no recent failure.
            if failures.count > 10_000 {
                failures = failures.filter { $0.value.contains { now.timeIntervalSince($0) < limits.window } }
            }
        }
    }

    /// A successful login clears the username's failures (not the address's).
    public func recordSuccess(username: String) {
        _ = failures.withLock { $0.removeValue(forKey: "user:" + username) }
    }

    private func keys(username: String, address: String?) -> [(String, Int)] {
        var keys = [("user:" + username, limits.perUsername)]
        if let address { keys.append(("addr:" + address, limits.perAddress)) }
        return keys
    }
}
