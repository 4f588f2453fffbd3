import Foundation
import Platform
import Synchronization

/// The per-key windows of a process that runs the only AI service (`aisaas all`): the same
/// sliding window as `SQLRateLimiter` (`RateWindow`), kept in memory, so that a request costs no
/// database write. They outlive changes of the limit (a new limiter over the same windows) and
/// start empty when the process starts again. Replicated AI services count in their shared
/// database instead.
public final class RateLimitWindows: Sendable {
    private struct Window {
        /// Admissions per second, oldest first, none older than the window.
        var buckets: [(second: Int64, hits: Int64)] = []
        var total: Int64 = 0

        mutating func drop(before oldest: Int64) {
            var dropped = 0
            while dropped < buckets.count, buckets[dropped].second < oldest {
                total -= buckets[dropped].hits
                dropped += 1
            }
            if dropped > 0 { buckets.removeFirst(dropped) }
        }

        /// Counts an admission in `second`, or in the newest bucket if a caller's clock read is
        /// older than it (buckets stay in order).
        mutating func add(at second: Int64) {
            if let last = buckets.indices.last, buckets[last].second >= second {
                buckets[last].hits += 1
            } else {
                buckets.append((second, 1))
            }
            total += 1
        }
    }

    private struct State {
        var windows: [String: Window] = [:]
        var acquisitionsSinceSweep = 0
    }

    private let state = Mutex(State())
    /// Windows are swept of keys that went quiet every this many acquisitions.
    private static let sweepEvery = 4096

    public init() {}

    /// The number of keys with admissions in their window (for tests).
    public var trackedKeys: Int { state.withLock { $0.windows.count } }

    enum Decision: Equatable {
        case admitted(remaining: Int64, reset: Int)
        case refused(retryAfter: Int)
    }

    func acquire(_ subject: String, limit: Int64, second now: Int64) -> Decision {
        state.withLock { state in
            let oldest = now - RateWindow.windowSeconds
            state.acquisitionsSinceSweep += 1
            if state.acquisitionsSinceSweep >= Self.sweepEvery {
                state.acquisitionsSinceSweep = 0
                state.windows = state.windows.filter { ($0.value.buckets.last?.second ?? .min) >= oldest }
            }
            var window = state.windows.removeValue(forKey: subject) ?? Window()
            defer { if !window.buckets.isEmpty { state.windows[subject] = window } }
            window.drop(before: oldest)
            guard window.total < limit else {
                return .refused(retryAfter: RateWindow.retryAfter(window.buckets, limit: limit, now: now))
            }
            window.add(at: now)
            let room = max(0, limit - window.total)
            return .admitted(remaining: room, reset: room > 0 ? 0 : RateWindow.retryAfter(window.buckets, limit: limit, now: now))
        }
    }
}

/// `RateLimiter` over windows kept in this process (see `RateLimitWindows`).
public struct MemoryRateLimiter: RateLimiter {
    public let limitPerMinute: Int
    private let windows: RateLimitWindows

    public init(windows: RateLimitWindows, limitPerMinute: Int) {
        self.windows = windows
        self.limitPerMinute = limitPerMinute
    }

    @discardableResult
    public func acquire(subject: String, now: Date) async throws -> RateLimitState {
        let second = Int64(now.timeIntervalSince1970.rounded(.down))
        switch windows.acquire(subject, limit: Int64(limitPerMinute), second: second) {
        case .admitted(let remaining, let reset):
            return RateLimitState(limit: limitPerMinute, remaining: Int(remaining), resetSeconds: reset)
        case .refused(let retryAfter):
            throw RateWindow.refusal(limitPerMinute: limitPerMinute, retryAfter: retryAfter)
        }
    }
}
