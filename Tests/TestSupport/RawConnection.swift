import NIOCore
import NIOPosix
import Synchronization

/// A plain TCP connection to a loopback port, for sending bytes no HTTP client would send and
/// watching what comes back, and when the server closes.
public final class RawConnection: Sendable {
    private struct State {
        var text = ""
        var closed = false
    }

    /// What the reading task has seen, shared with it.
    private final class Received: Sendable {
        let state = Mutex(State())
    }

    private let channel: any Channel
    private let writer: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private let inbox: Received
    private let reader: Task<Void, Never>

    public static func open(port: Int, host: String = "127.0.0.1") async throws -> RawConnection {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        // The connection reads in a task of its own for as long as it is open; the writer it
        // hands out lives as long as that task.
        let (writers, handOver) = AsyncStream.makeStream(of: NIOAsyncChannelOutboundWriter<ByteBuffer>.self)
        let received = Received()
        let task = Task {
            do {
                try await channel.executeThenClose { inbound, outbound in
                    handOver.yield(outbound)
                    handOver.finish()
                    for try await buffer in inbound {
                        received.state.withLock { $0.text += String(buffer: buffer) }
                    }
                }
            } catch {}
            handOver.finish()
            received.state.withLock { $0.closed = true }
        }
        guard let writer = await writers.first(where: { _ in true }) else {
            await task.value
            throw ChannelError.ioOnClosedChannel
        }
        return RawConnection(channel: channel.channel, writer: writer, received: received, reader: task)
    }

    private init(channel: any Channel, writer: NIOAsyncChannelOutboundWriter<ByteBuffer>, received: Received, reader: Task<Void, Never>) {
        self.channel = channel
        self.writer = writer
        self.inbox = received
        self.reader = reader
    }

    public func send(_ text: String) async throws {
        try await writer.write(ByteBuffer(string: text))
    }

    public func send(_ bytes: [UInt8]) async throws {
        try await writer.write(ByteBuffer(bytes: bytes))
    }

    /// Everything received so far.
    public var received: String { inbox.state.withLock { $0.text } }

    public var isClosedByServer: Bool { inbox.state.withLock { $0.closed } }

    /// What the server sent until it closed the connection, or nil if it was still open after
    /// `timeout`.
    public func readUntilClosed(timeout: Duration) async -> String? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let (text, closed) = inbox.state.withLock { ($0.text, $0.closed) }
            if closed { return text }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// Waits until `marker` arrived `occurrences` times (or the server closed), at most
    /// `timeout`; answers what arrived.
    public func read(until marker: String, occurrences: Int = 1, timeout: Duration) async -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let (text, closed) = inbox.state.withLock { ($0.text, $0.closed) }
            if text.components(separatedBy: marker).count > occurrences || closed { return text }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return received
    }

    public func close() async {
        try? await channel.close()
        await reader.value
    }
}
