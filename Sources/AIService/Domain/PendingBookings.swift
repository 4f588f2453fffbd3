import Logging
import Platform
import Synchronization

/// Bookings the database could not take (down, restarting, failing over), kept and written again,
/// oldest first, until it takes them: a short outage loses no usage record and no spend, and the
/// calls' quota reservations are released (held ones would keep the user waiting until they
/// expire). A retried booking the database had in fact committed is refused as a duplicate (its
/// record id), which rolls back its settlement too, so none is counted twice. At most `capacity`
/// are kept; beyond that they are logged and dropped.
final class PendingBookings: Sendable {
    private struct State {
        var queue: [InvocationBooking] = []
        var retrying = false
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

    /// Keeps `booking` for a later try; false when there is no room for it.
    func keep(_ booking: InvocationBooking) -> Bool {
        let (kept, start) = state.withLock { state -> (Bool, Bool) in
            guard state.queue.count < capacity else { return (false, false) }
            state.queue.append(booking)
            defer { state.retrying = true }
            return (true, !state.retrying)
        }
        // One task at a time, for as long as bookings wait; it ends when the queue is empty.
        if start { Task { await self.retry() } }
        return kept
    }

    private func retry() async {
        var delay = Duration.milliseconds(250)
        while true {
            try? await Task.sleep(for: delay)
            let batch = state.withLock { Array($0.queue.prefix(256)) }
            let errors = await ledger.book(batch)
            var again: [InvocationBooking] = []
            for (booking, error) in zip(batch, errors) {
                guard let error else { continue }
                if DatabaseFailure.isUnavailable(error) {
                    again.append(booking)
                } else {
                    logger.error("a kept usage record and quota settlement failed", metadata: [
                        "error": "\(String(reflecting: error))", "user-id": "\(booking.record.userId)", "request-id": "\(booking.record.requestId)",
                    ])
                }
            }
            let remaining = state.withLock { state -> Int in
                state.queue.removeFirst(batch.count)
                state.queue.insert(contentsOf: again, at: 0)
                if state.queue.isEmpty { state.retrying = false }
                return state.queue.count
            }
            if remaining == 0 {
                logger.notice("kept usage records booked")
                return
            }
            delay = again.isEmpty ? .zero : min(delay * 2, maxDelay)
        }
    }
}
