import NIOCore
import Synchronization

/// The body of a provider's answer as its connection reads it: an `AsyncSequence` of the buffers
/// in order, for one reader.
///
/// A buffer already read is taken without suspending. When the reader falls behind by more than
/// `pauseAbove` bytes the connection stops reading from the socket (the provider then waits on
/// TCP's window) until the reader has caught up to `resumeBelow`. A reader that goes away before
/// the end (cancelled, or the body dropped unread) closes the connection: its answer cannot be
/// skipped over to reuse it.
public final class ProviderResponseBody: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    public typealias Failure = any Error

    static let pauseAbove = 256 << 10
    static let resumeBelow = 64 << 10

    /// What the connection is told; both run on whatever thread the reader is on.
    struct Demand: Sendable {
        /// The reader caught up after a pause.
        var resume: @Sendable () -> Void
        /// The reader will read no more before the end.
        var abandon: @Sendable () -> Void
    }

    private struct State {
        var buffers = CircularBuffer<ByteBuffer>(initialCapacity: 4)
        var bufferedBytes = 0
        var paused = false
        var reader: CheckedContinuation<ByteBuffer?, any Error>?
        /// Set once ended: nil for a complete body, the error for a failed one.
        var end: (any Error)??
        var demand: Demand?
    }

    private let state = Mutex(State())

    init() {}

    /// Connects the body to its connection's reads.
    func attach(_ demand: Demand) {
        state.withLock { $0.demand = demand }
    }

    deinit {
        let abandon = state.withLock { state -> (@Sendable () -> Void)? in
            state.end == nil ? state.demand?.abandon : nil
        }
        abandon?()
    }

    /// A buffer read from the socket. Returns false when the connection should stop reading.
    @discardableResult
    func append(_ buffer: ByteBuffer) -> Bool {
        let (reader, keepReading) = state.withLock { state -> (CheckedContinuation<ByteBuffer?, any Error>?, Bool) in
            guard state.end == nil else { return (nil, true) }
            if let reader = state.reader {
                state.reader = nil
                return (reader, true)
            }
            state.buffers.append(buffer)
            state.bufferedBytes += buffer.readableBytes
            if state.bufferedBytes > Self.pauseAbove { state.paused = true }
            return (nil, !state.paused)
        }
        reader?.resume(returning: buffer)
        return keepReading
    }

    /// The body ended: completely (nil) or with `error`. Only the first call counts.
    func finish(throwing error: (any Error)? = nil) {
        let reader = state.withLock { state -> CheckedContinuation<ByteBuffer?, any Error>? in
            guard state.end == nil else { return nil }
            state.end = .some(error)
            defer { state.reader = nil }
            return state.reader
        }
        guard let reader else { return }
        if let error { reader.resume(throwing: error) } else { reader.resume(returning: nil) }
    }

    private enum Next {
        case buffer(ByteBuffer, resume: (@Sendable () -> Void)?)
        case end((any Error)?)
        case wait
    }

    private static func take(_ state: inout State) -> Next {
        if let buffer = state.buffers.popFirst() {
            state.bufferedBytes -= buffer.readableBytes
            var resume: (@Sendable () -> Void)?
            if state.paused, state.bufferedBytes < Self.resumeBelow {
                state.paused = false
                resume = state.demand?.resume
            }
            return .buffer(buffer, resume: resume)
        }
        if let end = state.end { return .end(end) }
        return .wait
    }

    /// The next buffer; nil at the end of a complete body.
    public func next() async throws -> ByteBuffer? {
        switch state.withLock({ Self.take(&$0) }) {
        case .buffer(let buffer, let resume):
            resume?()
            return buffer
        case .end(nil): return nil
        case .end(let error?): throw error
        case .wait: break
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<ByteBuffer?, any Error>) in
                let next = state.withLock { state -> Next in
                    let next = Self.take(&state)
                    if case .wait = next { state.reader = continuation }
                    return next
                }
                switch next {
                case .buffer(let buffer, let resume):
                    resume?()
                    continuation.resume(returning: buffer)
                case .end(nil): continuation.resume(returning: nil)
                case .end(let error?): continuation.resume(throwing: error)
                case .wait: break
                }
            }
        } onCancel: {
            abandon(CancellationError())
        }
    }

    /// Stops reading before the end: the body fails with `error` and the connection closes.
    func abandon(_ error: any Error) {
        let abandon = state.withLock { state -> (@Sendable () -> Void)? in
            state.end == nil ? state.demand?.abandon : nil
        }
        finish(throwing: error)
        abandon?()
    }

    /// The whole body in one buffer; more than `maxBytes` fails with `NIOTooManyBytesError`
    /// (and closes the connection).
    public func collect(upTo maxBytes: Int) async throws -> ByteBuffer {
        var collected: ByteBuffer?
        while let buffer = try await next() {
            if (collected?.readableBytes ?? 0) + buffer.readableBytes > maxBytes {
                let error = NIOTooManyBytesError(maxBytes: maxBytes)
                abandon(error)
                throw error
            }
            if collected == nil {
                collected = buffer
            } else {
                var buffer = buffer
                collected?.writeBuffer(&buffer)
            }
        }
        return collected ?? ByteBuffer()
    }

    public func makeAsyncIterator() -> Iterator {
        Iterator(body: self)
    }

    public struct Iterator: AsyncIteratorProtocol {
        let body: ProviderResponseBody

        public func next() async throws -> ByteBuffer? {
            try await body.next()
        }
    }
}
