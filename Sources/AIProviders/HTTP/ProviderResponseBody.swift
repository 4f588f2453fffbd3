import NIOCore
import Platform
import Synchronization

/// The body of a provider's answer as its connection reads it: an `AsyncSequence` of the buffers
/// in order, for one reader (an `AsyncPipe`, with the bytes it holds counted).
///
/// When the reader falls behind by more than `pauseAbove` bytes the connection stops reading from
/// the socket (the provider then waits on TCP's window) until the reader has caught up to
/// `resumeBelow`. A reader that goes away before the end (cancelled, or the body dropped unread)
/// closes the connection: its answer cannot be skipped over to reuse it.
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

    private struct Held {
        var bytes = 0
        var paused = false
        var resume: (@Sendable () -> Void)?
    }

    private let pipe = AsyncPipe<ByteBuffer>(readerCancellation: .ends)
    private let held = Mutex(Held())
    private let abandoned = Mutex<(@Sendable () -> Void)?>(nil)

    init() {}

    /// Connects the body to its connection's reads.
    func attach(_ demand: Demand) {
        held.withLock { $0.resume = demand.resume }
        abandoned.withLock { $0 = demand.abandon }
        // Cancelled while waiting, or freed (with the pipe) before the end.
        pipe.onReaderGone(demand.abandon)
    }

    /// A buffer read from the socket. Returns false when the connection should stop reading.
    @discardableResult
    func append(_ buffer: ByteBuffer) -> Bool {
        let keepReading = held.withLock { held -> Bool in
            held.bytes += buffer.readableBytes
            if held.bytes > Self.pauseAbove { held.paused = true }
            return !held.paused
        }
        pipe.yield(buffer)
        return keepReading
    }

    /// The body ended: completely (nil) or with `error`. Only the first call counts.
    func finish(throwing error: (any Error)? = nil) {
        pipe.finish(throwing: error)
    }

    /// The next buffer; nil at the end of a complete body.
    public func next() async throws -> ByteBuffer? {
        guard let buffer = try await pipe.next() else { return nil }
        let resume = held.withLock { held -> (@Sendable () -> Void)? in
            held.bytes -= buffer.readableBytes
            guard held.paused, held.bytes < Self.resumeBelow else { return nil }
            held.paused = false
            return held.resume
        }
        resume?()
        return buffer
    }

    /// Stops reading before the end: the body fails with `error` and the connection closes.
    func abandon(_ error: any Error) {
        pipe.finish(throwing: error)
        abandoned.withLock { $0 }?()
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
