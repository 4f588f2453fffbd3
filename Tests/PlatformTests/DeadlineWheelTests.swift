import Synchronization
import Testing
@testable import Platform

private final class Fired: Sendable {
    private let names = Mutex<[String]>([])

    func record(_ name: String) { names.withLock { $0.append(name) } }
    var all: [String] { names.withLock { $0 } }
}

@Suite("deadline wheel")
struct DeadlineWheelTests {
    @Test func anActionComesDueAfterItsDelayAndNotBefore() async {
        let wheel = DeadlineWheel(resolution: .milliseconds(50))
        let fired = Fired()
        let scheduled = ContinuousClock.now
        _ = wheel.schedule(after: .milliseconds(200), now: scheduled) { fired.record("late") }
        _ = wheel.schedule(after: .milliseconds(20), now: scheduled) { fired.record("soon") }

        #expect(wheel.takeDue(now: scheduled).isEmpty)
        for action in wheel.takeDue(now: scheduled + .milliseconds(100)) { await action() }
        #expect(fired.all == ["soon"])
        #expect(wheel.takeDue(now: scheduled + .milliseconds(150)).isEmpty)
        for action in wheel.takeDue(now: scheduled + .milliseconds(300)) { await action() }
        #expect(fired.all == ["soon", "late"])
        #expect(wheel.pending == 0)
    }

    @Test func aCancelledActionNeverRuns() async {
        let wheel = DeadlineWheel(resolution: .milliseconds(50))
        let fired = Fired()
        let scheduled = ContinuousClock.now
        let cancelled = wheel.schedule(after: .milliseconds(100), now: scheduled) { fired.record("cancelled") }
        _ = wheel.schedule(after: .milliseconds(100), now: scheduled) { fired.record("kept") }
        wheel.cancel(cancelled)
        wheel.cancel(cancelled)
        #expect(wheel.pending == 1)
        for action in wheel.takeDue(now: scheduled + .seconds(1)) { await action() }
        #expect(fired.all == ["kept"])
    }

    @Test func actionsLeftAloneForLongAllComeDueAtOnce() async {
        let wheel = DeadlineWheel(resolution: .milliseconds(10))
        let fired = Fired()
        let scheduled = ContinuousClock.now
        for index in 0..<5 {
            _ = wheel.schedule(after: .seconds(index * 60)) { fired.record("\(index)") }
        }
        for action in wheel.takeDue(now: scheduled + .seconds(3600)) { await action() }
        #expect(fired.all.sorted() == ["0", "1", "2", "3", "4"])
        #expect(wheel.pending == 0)
    }

    @Test func runningTheWheelFiresActionsUntilCancelled() async throws {
        let wheel = DeadlineWheel(resolution: .milliseconds(20))
        let fired = Fired()
        let runner = Task { await wheel.run() }
        _ = wheel.schedule(after: .milliseconds(50)) { fired.record("due") }
        for _ in 0..<250 where fired.all.isEmpty {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(fired.all == ["due"])
        runner.cancel()
        await runner.value
    }
}
