import Synchronization

/// Group commit: concurrent callers each submit one entry and wait for its outcome, while the
/// entries are written in batches, one batch at a time. Whoever submits while nothing is being
/// written writes at once, alone; whatever arrives meanwhile waits and goes into the next batch.
/// Under load, one database round trip and one commit then serve many callers, and the batch
/// size follows the load with no timer and no background task.
///
/// The caller whose entry opens a batch writes it and then hands the rest over to the oldest
/// waiting caller, so no caller keeps writing other callers' entries for long. A batch is written
/// in a task of its own, so that a cancelled caller never cuts a write short, unless the writes
/// run inline (`writesInline`: SQLite's statements run on the caller's thread and heed no
/// cancellation, so nothing can cut them short, and a task would only add two thread hand-offs).
public final class WriteBatcher<Entry: Sendable, Outcome: Sendable>: Sendable {
    public typealias Write = @Sendable ([Entry]) async -> [Outcome]
    /// Told the size of each batch before it is written (the batch-size histogram).
    public typealias BatchObserver = @Sendable (Int) -> Void

    private enum Signal: Sendable {
        case written(Outcome)
        case writeNext
    }

    private struct Waiter {
        var entry: Entry
        /// nil for the caller that writes the batch: it is running, not waiting.
        var continuation: CheckedContinuation<Signal, Never>?
    }

    private struct State {
        var pending: [Waiter] = []
        /// A caller is writing (or about to): new entries wait for it.
        var writing = false
    }

    private let state = Mutex(State())
    private let maxBatch: Int
    private let write: Write
    private let writesInline: Bool
    private let observeBatch: BatchObserver?

    /// `write` answers one outcome per entry, in order.
    public init(maxBatch: Int = 256, writesInline: Bool = false, observeBatch: BatchObserver? = nil, write: @escaping Write) {
        self.maxBatch = max(1, maxBatch)
        self.writesInline = writesInline
        self.observeBatch = observeBatch
        self.write = write
    }

    /// Entries waiting for a batch (not the one being written).
    var waitingCount: Int {
        state.withLock { state in state.pending.count { $0.continuation != nil } }
    }

    public func submit(_ entry: Entry) async -> Outcome {
        // Nothing being written: this caller writes at once, without suspending.
        let writesNow = state.withLock { state in
            if state.writing { return false }
            state.writing = true
            state.pending.append(Waiter(entry: entry, continuation: nil))
            return true
        }
        if writesNow {
            // Inline writes run on the caller's event loop: first let the other requests that loop
            // has ready submit theirs (the answers of one read of the sockets finish together),
            // so that one commit serves them all. On an idle loop this costs one loop turn.
            if writesInline { await Task.yield() }
            return await writeBatchWithOwnEntry()
        }
        let signal = await withCheckedContinuation { (continuation: CheckedContinuation<Signal, Never>) in
            let writesNow = state.withLock { state in
                if state.writing {
                    state.pending.append(Waiter(entry: entry, continuation: continuation))
                    return false
                }
                state.writing = true
                state.pending.append(Waiter(entry: entry, continuation: nil))
                return true
            }
            if writesNow { continuation.resume(returning: .writeNext) }
        }
        switch signal {
        case .written(let outcome):
            return outcome
        case .writeNext:
            return await writeBatchWithOwnEntry()
        }
    }

    /// Writes the oldest entries, among them the caller's own (the first pending one, whose
    /// continuation is nil), then passes the turn on.
    private func writeBatchWithOwnEntry() async -> Outcome {
        let batch = state.withLock { state in
            let batch = Array(state.pending.prefix(maxBatch))
            state.pending.removeFirst(batch.count)
            return batch
        }
        let write = self.write
        let entries = batch.map(\.entry)
        observeBatch?(entries.count)
        let outcomes = writesInline ? await write(entries) : await Task { await write(entries) }.value
        precondition(outcomes.count == batch.count, "WriteBatcher: write answered \(outcomes.count) outcomes for \(batch.count) entries")

        let next = state.withLock { state -> CheckedContinuation<Signal, Never>? in
            guard !state.pending.isEmpty else {
                state.writing = false
                return nil
            }
            let continuation = state.pending[0].continuation
            state.pending[0].continuation = nil
            return continuation
        }
        next?.resume(returning: .writeNext)

        var own: Outcome?
        for (waiter, outcome) in zip(batch, outcomes) {
            if let continuation = waiter.continuation {
                continuation.resume(returning: .written(outcome))
            } else {
                own = outcome
            }
        }
        // The first entry of every batch is the writer's own (see `submit` and the hand-over).
        guard let own else { preconditionFailure("WriteBatcher: the writer's own entry was not in its batch") }
        return own
    }
}
