import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs a program to completion without blocking a thread of Swift's cooperative pool: the exit
/// arrives through `Process.terminationHandler`. Output goes to files rather than pipes, so a
/// chatty child can never block on a full pipe that nobody drains.
struct ChildProcess {
    struct Outcome {
        var exitStatus: Int32
        var standardOutput: Data
    }

    struct TimedOut: Error {}

    /// Kills the child (SIGKILL) at `timeLimit` or when the calling task is cancelled.
    static func run(_ executable: String, _ arguments: [String], outputDirectory: String, timeLimit: Duration) async throws -> Outcome {
        let outputPath = outputDirectory + "/stdout"
        let errorPath = outputDirectory + "/stderr"
        guard FileManager.default.createFile(atPath: outputPath, contents: nil),
            FileManager.default.createFile(atPath: errorPath, contents: nil),
            let output = FileHandle(forWritingAtPath: outputPath),
            let errors = FileHandle(forWritingAtPath: errorPath)
        else {
            throw CocoaError(.fileWriteUnknown)
        }
        defer {
            try? output.close()
            try? errors.close()
        }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        process.standardError = errors
        let control = Control()
        let timer = Task {
            try await Task.sleep(for: timeLimit)
            control.kill(forTime: true)
        }
        defer { timer.cancel() }

        let status: Int32 = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int32, any Error>) in
                process.terminationHandler = { finished in
                    control.exited()
                    continuation.resume(returning: finished.terminationStatus)
                }
                do {
                    try process.run()
                } catch {
                    continuation.resume(throwing: error)
                    return
                }
                control.launched(pid: process.processIdentifier)
            }
        } onCancel: {
            control.kill()
        }
        try Task.checkCancellation()
        if control.wasKilledForTime { throw TimedOut() }
        return Outcome(exitStatus: status, standardOutput: (try? Data(contentsOf: URL(fileURLWithPath: outputPath))) ?? Data())
    }
}

/// Who may kill the child and when: a kill asked for before launch happens right after it, and
/// none is sent once the child has exited (its pid may then belong to another process).
private final class Control: Sendable {
    private struct State {
        var pid: pid_t?
        var exited = false
        var killRequested = false
        var killedForTime = false
    }

    private let state = Mutex(State())

    func launched(pid: pid_t) {
        state.withLock { state in
            state.pid = pid
            if state.killRequested, !state.exited { _ = systemKill(pid, SIGKILL) }
        }
    }

    func exited() {
        state.withLock { $0.exited = true }
    }

    func kill(forTime: Bool = false) {
        state.withLock { state in
            guard !state.exited else { return }
            state.killRequested = true
            if forTime { state.killedForTime = true }
            if let pid = state.pid { _ = systemKill(pid, SIGKILL) }
        }
    }

    var wasKilledForTime: Bool {
        state.withLock { $0.killedForTime }
    }
}

private func systemKill(_ pid: pid_t, _ signal: Int32) -> Int32 {
    kill(pid, signal)
}
