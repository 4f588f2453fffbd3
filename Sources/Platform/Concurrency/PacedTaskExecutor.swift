import NIOCore
import NIOPosix
import Synchronization

/// A task executor that runs its jobs in rounds, at most one round every `interval`, on a thread
/// of its own: for background pipelines fed by many small hand-overs, whose consumer would
/// otherwise be woken for each one.
///
/// swift-otel's tracer passes every span's start through an async stream to a task that waits for
/// it: at full sampling that task was woken on Swift's pool for each span, some 20,000 times a
/// second under load on the benchmark machine, each wake-up costing both cores a context switch.
/// Run on this executor, the task wakes once per round and finds the round's spans waiting.
/// Work that a round's jobs start (another stream's consumer, an actor, an export's steps) runs in
/// the same round; what comes from other threads waits for the next, `interval` later at most.
public final class PacedTaskExecutor: TaskExecutor {
    private struct State {
        var pending: [UnownedJob] = []
        var roundScheduled = false
        var rounds = 0
    }

    public let interval: TimeAmount
    private let loop: any EventLoop
    private let state = Mutex(State())

    /// - Parameter loop: the thread the rounds run on; keep it free of other work.
    public init(interval: Duration, loop: any EventLoop) {
        self.interval = TimeAmount(interval)
        self.loop = loop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let startsRound = state.withLock { state -> Bool in
            state.pending.append(job)
            guard !state.roundScheduled else { return false }
            state.roundScheduled = true
            return true
        }
        guard startsRound else { return }
        loop.scheduleTask(in: interval) { self.runRound() }
    }

    /// Rounds run so far.
    var rounds: Int { state.withLock { $0.rounds } }

    /// Runs the jobs waiting, and those they enqueue, until none is left.
    private func runRound() {
        state.withLock { $0.rounds += 1 }
        while true {
            let jobs = state.withLock { state -> [UnownedJob] in
                if state.pending.isEmpty { state.roundScheduled = false }
                defer { state.pending.removeAll(keepingCapacity: true) }
                return state.pending
            }
            if jobs.isEmpty { return }
            for job in jobs { job.runSynchronously(on: asUnownedTaskExecutor()) }
        }
    }

    /// A thread for the process's background pipelines, started on first use.
    public static let sharedLoop: any EventLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1).next()
}
