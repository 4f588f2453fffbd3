import NIOCore
import Synchronization

/// Elements from producers to one reader, in order, unbounded, failing or ending once.
///
/// What `AsyncThrowingStream` does for the relays of a request, for less: an element that is
/// already there is taken without suspending and without a cancellation handler (the stream
/// registers one for every element, a task status record that every later task switch of the
/// reader walks). The in-process gRPC transport moved to this from `AsyncThrowingStream` and a
/// completion through the platform took a fifth less CPU (bench/README.md).
public final class AsyncPipe<Element: Sendable>: AsyncSequence, Sendable {
    public typealias Failure = any Error

    /// What a reader's cancellation does while it waits.
    public enum ReaderCancellation: Sendable {
        /// The pipe fails with `CancellationError`, as `AsyncThrowingStream` ends.
        case ends
        /// Nothing: whoever cancels the reader also finishes the pipe, with the error it chooses.
        case ignored
    }

    private struct State {
        var buffer = CircularBuffer<Element>(initialCapacity: 4)
        var reader: CheckedContinuation<Element?, any Error>?
        /// Set once finished: nil for a normal end, the error for a failure.
        var end: (any Error)??
        /// Told once that the reader will read no more (see `onReaderGone`).
        var readerGone: (@Sendable () -> Void)?
    }

    private let state = Mutex(State())
    private let readerCancellation: ReaderCancellation

    public init(readerCancellation: ReaderCancellation) {
        self.readerCancellation = readerCancellation
    }

    /// `action` runs once when the reader will read no more before the pipe ended: cancelled while
    /// waiting (`.ends`), or gone with the pipe unfinished. A producer stops its work there.
    public func onReaderGone(_ action: @escaping @Sendable () -> Void) {
        state.withLock { $0.readerGone = action }
    }

    deinit {
        let gone = state.withLock { state -> (@Sendable () -> Void)? in
            state.end == nil ? state.readerGone : nil
        }
        gone?()
    }

    /// False once the pipe is finished: the element is dropped.
    @discardableResult
    public func yield(_ element: Element) -> Bool {
        let (delivered, reader) = state.withLock { state -> (Bool, CheckedContinuation<Element?, any Error>?) in
            guard state.end == nil else { return (false, nil) }
            if let reader = state.reader {
                state.reader = nil
                return (true, reader)
            }
            state.buffer.append(element)
            return (true, nil)
        }
        reader?.resume(returning: element)
        return delivered
    }

    /// Ends the pipe after what it holds: normally (nil) or with `error`. Only the first call counts.
    public func finish(throwing error: (any Error)? = nil) {
        let reader = state.withLock { state -> CheckedContinuation<Element?, any Error>? in
            guard state.end == nil else { return nil }
            state.end = .some(error)
            defer { state.reader = nil }
            return state.reader
        }
        guard let reader else { return }
        if let error { reader.resume(throwing: error) } else { reader.resume(returning: nil) }
    }

    private enum Next {
        case element(Element)
        case end((any Error)?)
        case wait
    }

    private func take(_ state: inout State) -> Next {
        if let element = state.buffer.popFirst() { return .element(element) }
        if let end = state.end { return .end(end) }
        return .wait
    }

    /// The next element; nil at a normal end. One reader at a time.
    public func next() async throws -> Element? {
        switch state.withLock({ take(&$0) }) {
        case .element(let element): return element
        case .end(nil): return nil
        case .end(let error?): throw error
        case .wait: break
        }
        switch readerCancellation {
        case .ignored:
            return try await wait()
        case .ends:
            return try await withTaskCancellationHandler {
                try await wait()
            } onCancel: {
                let gone = state.withLock { state -> (@Sendable () -> Void)? in
                    defer { state.readerGone = nil }
                    return state.end == nil ? state.readerGone : nil
                }
                finish(throwing: CancellationError())
                gone?()
            }
        }
    }

    private func wait() async throws -> Element? {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Element?, any Error>) in
            let next = state.withLock { state -> Next in
                let next = take(&state)
                if case .wait = next { state.reader = continuation }
                return next
            }
            switch next {
            case .element(let element): continuation.resume(returning: element)
            case .end(nil): continuation.resume(returning: nil)
            case .end(let error?): continuation.resume(throwing: error)
            case .wait: break
            }
        }
    }

    public func makeAsyncIterator() -> Iterator {
        Iterator(pipe: self)
    }

    public struct Iterator: AsyncIteratorProtocol {
        let pipe: AsyncPipe

        public func next() async throws -> Element? {
            try await pipe.next()
        }
    }
}
