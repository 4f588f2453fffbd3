import Platform
import Synchronization
import Testing

@Suite("concurrency limit")
struct ConcurrencyLimitTests {
    /// Counts bodies inside at once, and the most seen.
    final class Occupancy: Sendable {
        private let counts = Mutex((now: 0, most: 0, finished: 0))
        func enter() { counts.withLock { $0.now += 1; $0.most = max($0.most, $0.now) } }
        func leave() { counts.withLock { $0.now -= 1; $0.finished += 1 } }
        var most: Int { counts.withLock { $0.most } }
        var finished: Int { counts.withLock { $0.finished } }
    }

    @Test(.timeLimit(.minutes(1)))
    func noMoreThanTheLimitRunAtOnceAndAllFinish() async throws {
        let limit = ConcurrencyLimit(3)
        let occupancy = Occupancy()
        let (gate, open) = AsyncStream<Void>.makeStream()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<12 {
                group.addTask {
                    try await limit.run {
                        occupancy.enter()
                        defer { occupancy.leave() }
                        for await _ in gate { break }
                    }
                }
            }
            // Three inside, nine waiting: then let them through one by one.
            while limit.load != (3, 9) { await Task.yield() }
            for _ in 0..<12 { open.yield() }
            try await group.waitForAll()
        }
        #expect(occupancy.most == 3)
        #expect(occupancy.finished == 12)
        #expect(limit.load == (0, 0))
    }

    @Test(.timeLimit(.minutes(1)))
    func aCancelledWaiterLeavesTheQueueAndTakesNoTurn() async throws {
        let limit = ConcurrencyLimit(1)
        let (gate, open) = AsyncStream<Void>.makeStream()
        let holder = Task { try await limit.run { for await _ in gate { break } } }
        while limit.load != (1, 0) { await Task.yield() }
        let waiter = Task { try await limit.run { "ran" } }
        while limit.load != (1, 1) { await Task.yield() }
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(limit.load == (1, 0))
        open.yield()
        try await holder.value
        // The turn came back: the next caller runs at once.
        #expect(try await limit.run { "next" } == "next")
        #expect(limit.load == (0, 0))
    }

    @Test(.timeLimit(.minutes(1)))
    func aTaskCancelledBeforeItAsksWaitsForNothing() async throws {
        let limit = ConcurrencyLimit(1)
        let (gate, open) = AsyncStream<Void>.makeStream()
        let holder = Task { try await limit.run { for await _ in gate { break } } }
        while limit.load != (1, 0) { await Task.yield() }
        let late = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await limit.run { "ran" }
        }
        await #expect(throws: CancellationError.self) { try await late.value }
        #expect(limit.load == (1, 0))
        open.yield()
        try await holder.value
    }
}
