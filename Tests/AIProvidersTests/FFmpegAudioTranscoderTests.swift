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

    /// `seconds` of a 440 Hz tone, stereo, in the container the extension names.
    private func tone(_ format: String, in directory: TemporaryDirectory, codec: [String] = [], seconds: Int = 2) throws -> ByteBuffer {
        let transcoder = try transcoder()
        let path = directory.path + "/tone." + format
        _ = try run(
            transcoder.ffmpegPath,
            ["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=\(seconds)", "-ac", "2"] + codec + [path])
        return ByteBuffer(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: path))))
    }

    /// The codec, channels and bit rate of an MP3.
    private func describe(_ mp3: ByteBuffer, in directory: TemporaryDirectory) throws -> (codec: String?, channels: Int?, bitRate: Int?) {
        let outputPath = directory.path + "/out.mp3"
        try Data(mp3.readableBytesView).write(to: URL(fileURLWithPath: outputPath))
        let probe = try run(
            try transcoder().ffprobePath, ["-v", "error", "-show_entries", "stream=codec_name,channels,bit_rate", "-of", "json", outputPath])
        let json = try #require(try JSONSerialization.jsonObject(with: probe) as? [String: Any])
        let stream = try #require((json["streams"] as? [[String: Any]])?.first)
        return (stream["codec_name"] as? String, stream["channels"] as? Int, (stream["bit_rate"] as? String).flatMap(Int.init))
    }

    @Test(arguments: [
        ("wav", [String]()), ("webm", ["-c:a", "libopus"]), ("m4a", ["-c:a", "aac"]), ("mp3", []), ("flac", []), ("ogg", ["-c:a", "libopus"]),
    ])
    func transcodesToMonoMP3(format: String, codec: [String]) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let transcoder = try transcoder()
        let input = try tone(format, in: directory, codec: codec)

        let result = try await transcoder.transcodeForTranscription(input, fileExtension: format.uppercased())
        #expect(abs(result.durationSeconds - 2) < 0.1, "duration \(result.durationSeconds)")

        let output = try describe(result.mp3, in: directory)
        #expect(output.codec == "mp3")
        #expect(output.channels == 1)
        let bitRate = try #require(output.bitRate)
        #expect(abs(bitRate - 64_000) <= 2_000, "bit rate \(bitRate)")
    }

    /// With room for 40,000 bytes of MP3 (5 s at 64 kbit/s, 20 s at 16 kbit/s): longer audio gets a
    /// lower rate, audio that fits at no rate is refused before it is decoded, and audio whose
    /// container does not give its length is decoded no further than fits.
    @Test func longAudioGetsALowerRateToFitTheProvidersLimit() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var transcoder = try transcoder()
        transcoder.maxOutputBytes = 40_000

        let ten = try await transcoder.transcodeForTranscription(try tone("wav", in: directory, seconds: 10), fileExtension: "wav")
        #expect(abs(ten.durationSeconds - 10) < 0.2, "duration \(ten.durationSeconds)")
        #expect(ten.mp3.readableBytes <= 40_000)
        let tenRate = try #require(try describe(ten.mp3, in: directory).bitRate)
        #expect(abs(tenRate - 24_000) <= 2_000, "bit rate \(tenRate)")

        let scratch = directory.path + "/scratch"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: false)
        transcoder.temporaryDirectory = scratch
        let longer = try tone("wav", in: directory, seconds: 30)
        let refused = await domainError { _ = try await transcoder.transcodeForTranscription(longer, fileExtension: "wav") }
        #expect(refused?.kind == .invalidArgument)
        #expect(refused?.message.contains("too long") == true, "\(String(describing: refused))")

        // Written to a pipe, a webm has no duration in its header.
        let path = directory.path + "/streamed.webm"
        let streamed = try run(
            transcoder.ffmpegPath,
            ["-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=12", "-c:a", "libopus", "-f", "webm", "pipe:1"])
        try streamed.write(to: URL(fileURLWithPath: path))
        let unknown = try await transcoder.transcodeForTranscription(ByteBuffer(bytes: Array(streamed)), fileExtension: "webm")
        #expect(abs(unknown.durationSeconds - 12) < 0.2, "duration \(unknown.durationSeconds)")
        #expect(unknown.mp3.readableBytes <= 40_000)
        let unknownRate = try #require(try describe(unknown.mp3, in: directory).bitRate)
        #expect(abs(unknownRate - 16_000) <= 2_000, "bit rate \(unknownRate)")
        let unfit = try run(
            transcoder.ffmpegPath,
            ["-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=25", "-c:a", "libopus", "-f", "webm", "pipe:1"])
        let tooLong = await domainError { _ = try await transcoder.transcodeForTranscription(ByteBuffer(bytes: Array(unfit)), fileExtension: "webm") }
        #expect(tooLong?.message.contains("too long") == true, "\(String(describing: tooLong))")
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch).isEmpty)
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
        let error = await domainError { _ = try await transcoder().transcodeForTranscription(ByteBuffer(bytes: [1, 2, 3]), fileExtension: "aiff") }
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
