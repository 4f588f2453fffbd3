import ArgumentParser
import Dispatch
import Foundation
import TestSupport

/// `fake-provider`: the tests' `FakeProvider` as a process of its own, so that a load generator
/// can call it directly and the platform can be pointed at it. Prints its base URL
/// (`http://HOST:PORT/v1`) as the first line of standard output, then serves until SIGTERM or
/// SIGINT.
@main
struct FakeProviderServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fake-provider",
        abstract: "Serve the fake OpenAI-compatible provider on a free port of 127.0.0.1."
    )

    @Option(help: "Address to listen on (a test's network namespace gives it another one).")
    var host: String = "127.0.0.1"

    @Option(help: "Milliseconds every answer waits before it is sent (0: at once).")
    var delayMs: Int = 0

    @Option(help: "Pieces a streamed chat answer is cut into.")
    var streamChunks: Int = 3

    @Option(help: "Milliseconds between the events of a streamed chat answer.")
    var streamIntervalMs: Int = 0

    @Option(help: "Requests kept in memory; the fake records every request, so a benchmark keeps this small.")
    var recordingLimit: Int = 1

    func validate() throws {
        guard delayMs >= 0, streamIntervalMs >= 0, recordingLimit >= 0 else {
            throw ValidationError("--delay-ms, --stream-interval-ms and --recording-limit must not be negative")
        }
        guard streamChunks >= 1 else { throw ValidationError("--stream-chunks must be at least 1") }
    }

    func run() async throws {
        #if canImport(Darwin)
        // Darwin's signal sources see a signal only if its default action is off; Linux's
        // dispatch installs a handler of its own.
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        #endif
        let (signals, signalSink) = AsyncStream.makeStream(of: Int32.self)
        let sources = [SIGTERM, SIGINT].map { number in
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { signalSink.yield(number) }
            source.resume()
            return source
        }

        let fake = try await FakeProvider.start(host: host)
        fake.setRecordingLimit(recordingLimit)
        fake.setBehavior(delayMs > 0 ? .delay(.milliseconds(delayMs)) : .answer)
        fake.setStreaming(.init(chunks: streamChunks, interval: .milliseconds(streamIntervalMs)))
        // Unbuffered: the caller reads this line while the process keeps running.
        FileHandle.standardOutput.write(Data((fake.baseURL + "\n").utf8))

        for await _ in signals { break }
        sources.forEach { $0.cancel() }
        await fake.stop()
    }
}
