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

    private let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
    private let state = Mutex(State())
    private let reader: Mutex<Task<Void, Never>?> = Mutex(nil)

    public static func open(port: Int, host: String = "127.0.0.1") async throws -> RawConnection {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let connection = RawConnection(channel)
        connection.startReading()
        return connection
    }

    private init(_ channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>) {
        self.channel = channel
    }

    private func startReading() {
        let task = Task { [self] in
            do {
                for try await buffer in self.channel.inbound {
                    self.state.withLock { $0.text += String(buffer: buffer) }
                }
            } catch {}
            self.state.withLock { $0.closed = true }
        }
        reader.withLock { $0 = task }
    }

    public func send(_ text: String) async throws {
        try await channel.outbound.write(ByteBuffer(string: text))
    }

    public func send(_ bytes: [UInt8]) async throws {
        try await channel.outbound.write(ByteBuffer(bytes: bytes))
    }

    /// Everything received so far.
    public var received: String { state.withLock { $0.text } }

    public var isClosedByServer: Bool { state.withLock { $0.closed } }

    /// What the server sent until it closed the connection, or nil if it was still open after
    /// `timeout`.
    public func readUntilClosed(timeout: Duration) async -> String? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let (text, closed) = state.withLock { ($0.text, $0.closed) }
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
            let (text, closed) = state.withLock { ($0.text, $0.closed) }
            if text.components(separatedBy: marker).count > occurrences || closed { return text }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return received
    }

    public func close() async {
        try? await channel.channel.close()
        let task = reader.withLock { $0 }
        await task?.value
    }
}
