import NIOCore
import NIOPosix
import Synchronization
import Testing
@testable import Platform

/// A write that records its batches and can be held until released.
private final class RecordingWrite: Sendable {
    private struct State {
        var batches: [[Int]] = []
        var heldUntilRelease = false
        var waiters: [CheckedContinuation<Void, Never>] = []
        var sawCancellation = false
    }

    private let state = Mutex(State())

    var batches: [[Int]] { state.withLock { $0.batches } }
    var sawCancellation: Bool { state.withLock { $0.sawCancellation } }

    func hold() { state.withLock { $0.heldUntilRelease = true } }

    func release() {
        let waiters = state.withLock { state in
            state.heldUntilRelease = false
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Answers each entry doubled.
    func callAsFunction(_ entries: [Int]) async -> [Int] {
        await withCheckedContinuation { continuation in
            let held = state.withLock { state in
                state.batches.append(entries)
                if state.heldUntilRelease { state.waiters.append(continuation) }
                return state.heldUntilRelease
            }
            if !held { continuation.resume() }
        }
        if Task.isCancelled { state.withLock { $0.sawCancellation = true } }
        return entries.map { $0 * 2 }
    }
}

/// Waits (politely) until `condition` holds, failing the test after ~10 s.
private func eventually(_ condition: () -> Bool) async throws {
    for _ in 0..<2_000 where !condition() {
        try await Task.sleep(for: .milliseconds(5))
    }
    #expect(condition())
}

@Suite("write batcher")
struct WriteBatcherTests {
    @Test("every submission gets the outcome of its own entry, and each entry is written once")
    func outcomes() async {
        let write = RecordingWrite()
        let batcher = WriteBatcher<Int, Int>(maxBatch: 16) { await write($0) }
        let results = await withTaskGroup(of: (Int, Int).self) { group in
            for entry in 0..<500 {
                group.addTask { (entry, await batcher.submit(entry)) }
            }
            return await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        #expect(results.count == 500)
        #expect(results.allSatisfy { $0.value == $0.key * 2 })
        let written = write.batches.flatMap { $0 }
        #expect(written.sorted() == Array(0..<500))
        #expect(write.batches.allSatisfy { $0.count <= 16 })
    }

    @Test("entries that arrive while a batch is written go together into the next one")
    func batching() async throws {
        let write = RecordingWrite()
        let batcher = WriteBatcher<Int, Int>(maxBatch: 100) { await write($0) }
        write.hold()
        async let first = batcher.submit(0)
        try await eventually { write.batches.count == 1 }
        let others = Task {
            await withTaskGroup(of: Int.self) { group in
                for entry in 1...10 { group.addTask { await batcher.submit(entry) } }
                return await group.reduce(into: []) { $0.append($1) }
            }
        }
        try await eventually { batcher.waitingCount == 10 }
        write.release()
        #expect(await first == 0)
        #expect(await others.value.sorted() == (1...10).map { $0 * 2 })
        #expect(write.batches.count == 2)
        #expect(write.batches.last?.sorted() == Array(1...10))
        #expect(batcher.waitingCount == 0)
    }

    @Test("a submitter that is cancelled mid-write does not cancel the write")
    func cancellation() async throws {
        let write = RecordingWrite()
        let batcher = WriteBatcher<Int, Int> { await write($0) }
        write.hold()
        let submitter = Task { await batcher.submit(21) }
        try await eventually { write.batches.count == 1 }
        submitter.cancel()
        write.release()
        #expect(await submitter.value == 42)
        #expect(!write.sawCancellation)
        // Idle again: the next entry is written at once, alone.
        #expect(await batcher.submit(1) == 2)
        #expect(write.batches.last == [1])
    }

    @Test("inline, the first of the submissions an event loop has ready lets the others join it: one batch")
    func inlineGathersTheLoopsReadySubmissions() async throws {
        let write = RecordingWrite()
        let batcher = WriteBatcher<Int, Int>(maxBatch: 100, writesInline: true) { await write($0) }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let executor = EventLoopTaskExecutor.of(loop)
        // Started in one turn of the loop, as the answers of one read of the sockets are.
        let tasks = try await loop.submit {
            (0..<10).map { entry in Task(executorPreference: executor) { await batcher.submit(entry) } }
        }.get()
        var outcomes: [Int] = []
        for task in tasks { outcomes.append(await task.value) }
        #expect(outcomes == (0..<10).map { $0 * 2 })
        #expect(write.batches.count == 1)
        #expect(write.batches.first?.sorted() == Array(0..<10))
    }
}
