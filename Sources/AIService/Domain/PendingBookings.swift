import Logging
import Platform
import Synchronization

/// Bookings the database could not take (down, restarting, failing over), kept and written again,
/// oldest first, until it takes them: a short outage loses no usage record and no spend, and the
/// calls' quota reservations are released (held ones would keep the user waiting until they
/// expire). A retried booking the database had in fact committed is refused as a duplicate (its
/// record id), which rolls back its settlement too, so none is counted twice. At most `capacity`
/// are kept; beyond that they are logged and dropped. When the process stops, `finish` tries
/// what is kept once more before the database closes, and names in the log what it could not write.
final class PendingBookings: Sendable {
    private struct State {
        var queue: [InvocationBooking] = []
        var retrying: Task<Void, Never>?
        var finished = false
    }

    private let ledger: any InvocationLedger
    private let capacity: Int
    private let logger: Logger
    private let state = Mutex(State())
    /// The longest wait between tries.
    private let maxDelay: Duration

    init(ledger: any InvocationLedger, capacity: Int = 100_000, maxDelay: Duration = .seconds(10), logger: Logger) {
        self.ledger = ledger
        self.capacity = capacity
        self.maxDelay = maxDelay
        self.logger = logger
    }

    var count: Int { state.withLock { $0.queue.count } }

    /// Keeps `booking` for a later try; false when there is no room for it, or the process is stopping.
    func keep(_ booking: InvocationBooking) -> Bool {
        state.withLock { state -> Bool in
            guard !state.finished, state.queue.count < capacity else { return false }
            state.queue.append(booking)
            // One task at a time, for as long as bookings wait; it ends when the queue is empty.
            if state.retrying == nil { state.retrying = Task { await self.retry() } }
            return true
        }
    }

    /// Stops the retries and tries what is kept once more, for at most `budget`: the first batch
    /// the database still cannot take ends the attempt (the rest would only wait out the same
    /// timeouts while the process is told to stop). What is not written is lost, and logged with
    /// its users and requests. Call before the database closes.
    func finish(budget: Duration = .seconds(5)) async {
        let retrying = state.withLock { state -> Task<Void, Never>? in
            state.finished = true
            return state.retrying
        }
        retrying?.cancel()
        await retrying?.value
        let deadline = ContinuousClock.now + budget
        var lost: [InvocationBooking] = []
        while ContinuousClock.now < deadline {
            let batch = state.withLock { state -> [InvocationBooking] in
                defer { state.queue.removeFirst(min(256, state.queue.count)) }
                return Array(state.queue.prefix(256))
            }
            if batch.isEmpty { break }
            let stillDown = unwritten(batch, await ledger.book(batch))
            lost += stillDown
            if !stillDown.isEmpty { break }
        }
        lost += state.withLock { state in
            defer { state.queue.removeAll() }
            return state.queue
        }
        guard !lost.isEmpty else { return }
        logger.error("usage records and quota settlements lost: the database did not take them before the process stopped", metadata: [
            "lost": "\(lost.count)",
            "request-ids": "\(lost.prefix(100).map(\.record.requestId).joined(separator: ","))",
            "user-ids": "\(Set(lost.map(\.record.userId)).sorted().prefix(100).joined(separator: ","))",
        ])
    }

    private func retry() async {
        var delay = Duration.milliseconds(250)
        while !Task.isCancelled {
            try? await Task.sleep(for: delay)
            if Task.isCancelled { break }
            let batch = state.withLock { Array($0.queue.prefix(256)) }
            let again = unwritten(batch, await ledger.book(batch))
            let remaining = state.withLock { state -> Int in
                state.queue.removeFirst(batch.count)
                state.queue.insert(contentsOf: again, at: 0)
                if state.queue.isEmpty { state.retrying = nil }
                return state.queue.count
            }
            if remaining == 0 {
                logger.notice("kept usage records booked")
                return
            }
            delay = again.isEmpty ? .zero : min(delay * 2, maxDelay)
        }
    }

    /// The bookings of `batch` the database could not take for now (`errors` are the ledger's, in
    /// order); the others went in, or were refused for themselves, which is logged.
    private func unwritten(_ batch: [InvocationBooking], _ errors: [(any Error)?]) -> [InvocationBooking] {
        var unwritten: [InvocationBooking] = []
        for (booking, error) in zip(batch, errors) {
            guard let error else { continue }
            if DatabaseFailure.isUnavailable(error) {
                unwritten.append(booking)
            } else if DatabaseFailure.isDuplicate(error) {
                logger.notice("a kept usage record was booked already: its first try went in", metadata: [
                    "user-id": "\(booking.record.userId)", "request-id": "\(booking.record.requestId)",
                ])
            } else {
                logger.error("a kept usage record and quota settlement failed", metadata: [
                    "error": "\(String(reflecting: error))", "user-id": "\(booking.record.userId)", "request-id": "\(booking.record.requestId)",
                ])
            }
        }
        return unwritten
    }
}
