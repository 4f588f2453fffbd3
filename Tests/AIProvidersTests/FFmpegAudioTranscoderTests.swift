import AIProviders
import Foundation
import NIOCore
import Platform
import TestSupport
import Testing

@Suite struct FFmpegAudioTranscoderTests {
    private func transcoder() throws -> FFmpegAudioTranscoder {
        try #require(FFmpegAudioTranscoder.locate(ffmpegPath: nil, ffprobePath: nil), "ffmpeg and ffprobe must be on PATH")
    }

    /// Runs a program to completion and returns its standard output.
    private func run(_ program: String, _ arguments: [String]) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(program) \(arguments)")
        return data
    }

    /// Two seconds of a 440 Hz tone, stereo, in the container the extension names.
    private func tone(_ format: String, in directory: TemporaryDirectory, codec: [String] = []) throws -> ByteBuffer {
        let transcoder = try transcoder()
        let path = directory.path + "/tone." + format
        _ = try run(
            transcoder.ffmpegPath,
            ["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-ac", "2"] + codec + [path])
        return ByteBuffer(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: path))))
    }

    @Test(arguments: [("wav", [String]()), ("webm", ["-c:a", "libopus"]), ("m4a", ["-c:a", "aac"]), ("mp3", [])])
    func transcodesToMonoMP3(format: String, codec: [String]) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let transcoder = try transcoder()
        let input = try tone(format, in: directory, codec: codec)

        let result = try await transcoder.transcodeForTranscription(input, fileExtension: format.uppercased())
        #expect(abs(result.durationSeconds - 2) < 0.1, "duration \(result.durationSeconds)")

        let outputPath = directory.path + "/out.mp3"
        try Data(result.mp3.readableBytesView).write(to: URL(fileURLWithPath: outputPath))
        let probe = try run(
            transcoder.ffprobePath, ["-v", "error", "-show_entries", "stream=codec_name,channels,bit_rate", "-of", "json", outputPath])
        let json = try #require(try JSONSerialization.jsonObject(with: probe) as? [String: Any])
        let stream = try #require((json["streams"] as? [[String: Any]])?.first)
        #expect(stream["codec_name"] as? String == "mp3")
        #expect(stream["channels"] as? Int == 1)
        let bitRate = try #require((stream["bit_rate"] as? String).flatMap(Int.init))
        #expect(abs(bitRate - 64_000) <= 2_000, "bit rate \(bitRate)")
    }

    @Test func garbageIsUndecodable() async throws {
        let garbage = ByteBuffer(bytes: Array(String(repeating: "this is not audio at all. ", count: 200).utf8))
        for format in ["mp3", "wav", "webm"] {
            await #expect(throws: DomainError(.invalidArgument, "the audio could not be decoded", reason: "UndecodableAudio")) {
                _ = try await transcoder().transcodeForTranscription(garbage, fileExtension: format)
            }
        }
        await #expect(throws: DomainError(.invalidArgument, "the audio could not be decoded", reason: "UndecodableAudio")) {
            _ = try await transcoder().transcodeForTranscription(ByteBuffer(), fileExtension: "mp3")
        }
    }

    @Test func unsupportedExtensionIsRefused() async throws {
        let error = await domainError { _ = try await transcoder().transcodeForTranscription(ByteBuffer(bytes: [1, 2, 3]), fileExtension: "ogg") }
        #expect(error?.kind == .invalidArgument)
        #expect(error?.reason == "UnsupportedAudioFormat")
    }

    @Test func temporaryFilesAreRemoved() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let input = try tone("wav", in: directory)
        let scratch = directory.path + "/scratch"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: false)
        var transcoder = try transcoder()
        transcoder.temporaryDirectory = scratch
        _ = try await transcoder.transcodeForTranscription(input, fileExtension: "wav")
        _ = try? await transcoder.transcodeForTranscription(ByteBuffer(string: "garbage"), fileExtension: "wav")
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch).isEmpty)
    }

    @Test func timeLimitStopsTheChild() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // A "transcoder" whose programs never finish on their own.
        let sleeper = directory.path + "/sleeper"
        try "#!/bin/sh\nexec sleep 30\n".write(toFile: sleeper, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: sleeper)
        let stuck = FFmpegAudioTranscoder(ffmpegPath: sleeper, ffprobePath: sleeper, timeLimit: .milliseconds(300))
        let started = ContinuousClock.now
        let error = await domainError { _ = try await stuck.transcodeForTranscription(ByteBuffer(bytes: [1, 2, 3]), fileExtension: "mp3") }
        #expect(error?.kind == .deadlineExceeded)
        // Behaviour, not speed: the child was stopped rather than left to run its 30 s.
        #expect(ContinuousClock.now - started < .seconds(25))
    }

    @Test func locateWithBogusPathsIsNil() throws {
        #expect(FFmpegAudioTranscoder.locate(ffmpegPath: "/nonexistent/ffmpeg", ffprobePath: nil) == nil)
        #expect(FFmpegAudioTranscoder.locate(ffmpegPath: nil, ffprobePath: "/nonexistent/ffprobe") == nil)
        let found = try transcoder()
        #expect(FFmpegAudioTranscoder.locate(ffmpegPath: found.ffmpegPath, ffprobePath: found.ffprobePath)?.ffmpegPath == found.ffmpegPath)
    }
}
