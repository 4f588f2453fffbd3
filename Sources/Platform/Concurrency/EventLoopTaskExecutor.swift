import NIOCore
import NIOPosix
import Synchronization

/// A Swift concurrency task executor that runs its jobs on one NIO event loop.
///
/// A request's task that prefers the event loop of its connection runs start to finish on that
/// loop's thread: the reads and writes of its sockets, the in-process gRPC handler, the provider's
/// HTTP connection (async-http-client prefers the caller's loop) and SQLite's statements, with no
/// hand-off to Swift's cooperative pool and back. On the benchmark machine each such hand-off cost
/// 50–100 µs of latency and about 30 µs of CPU, and a call through the platform made a dozen of
/// them (bench/README.md). Work that blocks for long (bcrypt, DNS) still goes to a thread pool.
public final class EventLoopTaskExecutor: TaskExecutor {
    public let eventLoop: any EventLoop

    private init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { [self] in
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }

    /// One executor per loop, made on first use.
    private static let executors = Mutex<[ObjectIdentifier: EventLoopTaskExecutor]>([:])

    /// The executor of `eventLoop`.
    public static func of(_ eventLoop: any EventLoop) -> EventLoopTaskExecutor {
        executors.withLock { executors in
            let key = ObjectIdentifier(eventLoop)
            if let known = executors[key] { return known }
            let made = EventLoopTaskExecutor(eventLoop: eventLoop)
            executors[key] = made
            return made
        }
    }

    private static let currentThread = ThreadSpecificVariable<EventLoopTaskExecutor>()

    /// The executor of the event loop whose thread runs the caller; nil off the loops.
    public static var current: EventLoopTaskExecutor? {
        if let known = currentThread.currentValue { return known }
        guard let loop = MultiThreadedEventLoopGroup.currentEventLoop else { return nil }
        let executor = of(loop)
        currentThread.currentValue = executor
        return executor
    }
}

extension Task where Failure == any Error {
    /// A task that runs where its creator runs: on the creator's event loop when it runs on one
    /// (no thread hand-off to start it or to await it), on the cooperative pool otherwise.
    @discardableResult
    public static func onCurrentLoop(_ operation: sending @escaping @isolated(any) () async throws -> Success) -> Task<Success, any Error> {
        Task(executorPreference: EventLoopTaskExecutor.current, operation: operation)
    }

    /// The task's value, the task cancelled if the caller is while it waits (an unstructured
    /// task does not inherit its creator's cancellation).
    public var valueCancelledWithCaller: Success {
        get async throws {
            try await withTaskCancellationHandler {
                try await value
            } onCancel: {
                cancel()
            }
        }
    }
}

extension Task where Failure == Never {
    /// A task that runs where its creator runs (see the throwing variant).
    @discardableResult
    public static func onCurrentLoop(_ operation: sending @escaping @isolated(any) () async -> Success) -> Task<Success, Never> {
        Task(executorPreference: EventLoopTaskExecutor.current, operation: operation)
    }
}
