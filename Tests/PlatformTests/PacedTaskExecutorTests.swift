import NIOCore
import NIOPosix
import Testing

@testable import Platform

@Suite("paced task executor")
struct PacedTaskExecutorTests {
    @Test("a task on the executor runs on its thread, and so does what it awaits")
    func tasksRunOnTheExecutorsThread() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let executor = PacedTaskExecutor(interval: .milliseconds(1), loop: loop)
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        let consumer = Task(executorPreference: executor) { () -> (sum: Int, alwaysOnLoop: Bool) in
            var sum = 0
            var alwaysOnLoop = loop.inEventLoop
            for await value in stream {
                sum += value
                alwaysOnLoop = alwaysOnLoop && loop.inEventLoop
            }
            return (sum, alwaysOnLoop)
        }
        for value in 1...100 { continuation.yield(value) }
        continuation.finish()
        let result = await consumer.value
        #expect(result.sum == 5050)
        #expect(result.alwaysOnLoop)
        try await group.shutdownGracefully()
    }

    @Test("hand-overs from other threads wake the consumer once a round, not once each")
    func handOversAreTakenInRounds() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let executor = PacedTaskExecutor(interval: .milliseconds(50), loop: group.next())
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        let consumer = Task(executorPreference: executor) { () -> Int in
            var count = 0
            for await _ in stream { count += 1 }
            return count
        }
        // Fed one by one from a thread of its own, pausing often enough for the consumer to
        // wait again each time if it ran as soon as it was woken.
        let feeder = Task.detached {
            for value in 0..<2_000 {
                continuation.yield(value)
                if value % 10 == 0 { await Task.yield() }
            }
            continuation.finish()
        }
        await feeder.value
        #expect(await consumer.value == 2_000)
        // A round every 50 ms while values come: far fewer than one per value.
        #expect(executor.rounds < 200)
        #expect(executor.rounds >= 1)
        try await group.shutdownGracefully()
    }
}
