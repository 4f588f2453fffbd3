import Synchronization

/// Coarse timers for many short-lived deadlines: one task wakes every `resolution` and runs what
/// has come due, so scheduling and cancelling a deadline is a dictionary insert and remove under a
/// lock, with no task, timer or system call of its own. An action runs at most one `resolution`
/// after its time (never before it); one that was cancelled first never runs.
public final class DeadlineWheel: Sendable {
    public struct Ticket: Sendable, Hashable {
        fileprivate let slot: Int64
        fileprivate let id: UInt64
    }

    public typealias Action = @Sendable () async -> Void

    private struct State {
        var nextID: UInt64 = 0
        /// The last slot whose actions were taken to run.
        var passed: Int64
        var slots: [Int64: [UInt64: Action]] = [:]
    }

    public let resolution: Duration
    private let origin: ContinuousClock.Instant
    private let state: Mutex<State>

    public init(resolution: Duration = .milliseconds(50)) {
        precondition(resolution > .zero, "a deadline wheel needs a positive resolution")
        self.resolution = resolution
        self.origin = .now
        self.state = Mutex(State(passed: 0))
    }

    /// Runs `action` once `delay` has passed, unless `cancel` comes first.
    public func schedule(after delay: Duration, now: ContinuousClock.Instant = .now, _ action: @escaping Action) -> Ticket {
        // Rounded up, so that an action never runs early.
        let due = Self.slot(of: now + delay - origin, resolution: resolution, roundingUp: true)
        return state.withLock { state in
            let slot = max(due, state.passed + 1)
            state.nextID &+= 1
            state.slots[slot, default: [:]][state.nextID] = action
            return Ticket(slot: slot, id: state.nextID)
        }
    }

    public func cancel(_ ticket: Ticket) {
        state.withLock { state in
            guard var actions = state.slots.removeValue(forKey: ticket.slot) else { return }
            actions[ticket.id] = nil
            if !actions.isEmpty { state.slots[ticket.slot] = actions }
        }
    }

    /// The number of actions waiting.
    public var pending: Int {
        state.withLock { $0.slots.values.reduce(0) { $0 + $1.count } }
    }

    /// Runs due actions until the calling task is cancelled. Actions run one after another on this
    /// task, so they should be quick.
    public func run() async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: resolution, tolerance: resolution / 4)
            } catch {
                return
            }
            for action in takeDue() { await action() }
        }
    }

    /// Actions whose slot has passed, removed from the wheel.
    func takeDue(now: ContinuousClock.Instant = .now) -> [Action] {
        let current = Self.slot(of: now - origin, resolution: resolution, roundingUp: false)
        return state.withLock { state in
            var due: [Action] = []
            if current - state.passed > Int64(state.slots.count) {
                // After a long pause: visit the slots there are, not every slot that passed.
                for slot in state.slots.keys where slot <= current {
                    if let actions = state.slots.removeValue(forKey: slot) { due += actions.values }
                }
            } else {
                var slot = state.passed + 1
                while slot <= current {
                    if let actions = state.slots.removeValue(forKey: slot) { due += actions.values }
                    slot += 1
                }
            }
            state.passed = max(state.passed, current)
            return due
        }
    }

    private static func slot(of elapsed: Duration, resolution: Duration, roundingUp: Bool) -> Int64 {
        let ratio = elapsed / resolution
        guard ratio.isFinite else { return ratio > 0 ? Int64.max / 2 : 0 }
        let clamped = min(max(ratio, 0), Double(Int64.max / 2))
        return Int64(roundingUp ? clamped.rounded(.up) : clamped.rounded(.down))
    }
}
