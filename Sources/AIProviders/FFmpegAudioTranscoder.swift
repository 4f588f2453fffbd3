import Foundation
import NIOCore
import NIOFoundationCompat
import Platform
import Tracing

/// Converts uploads to mono 64 kbit/s MP3 with the `ffmpeg` program and measures them with `ffprobe`.
public struct FFmpegAudioTranscoder: AudioTranscoding {
    /// Upload extensions accepted, as OpenAI's transcription endpoint does.
    public static let supportedExtensions: Set<String> = ["mp3", "mp4", "mpeg", "mpga", "m4a", "wav", "webm"]

    /// Demuxers ffmpeg may pick for those formats. ffmpeg guesses the format from the content, not
    /// the name, so without this a crafted "mp3" could be a playlist that makes ffmpeg open other
    /// files or URLs.
    static let allowedDemuxers = "mp3,mov,mp4,m4a,3gp,3g2,mj2,wav,matroska,webm,mpeg"

    public let ffmpegPath: String
    public let ffprobePath: String
    /// Limit for each child process.
    public var timeLimit: Duration
    public var maxOutputBytes: Int
    /// Where each conversion gets a private folder, removed when it ends.
    public var temporaryDirectory: String
    /// Each conversion is a span (`ffmpeg transcode`) when tracing is on.
    public var tracer: any Tracer

    public init(
        ffmpegPath: String, ffprobePath: String, timeLimit: Duration = .seconds(120), maxOutputBytes: Int = 50 << 20,
        temporaryDirectory: String = NSTemporaryDirectory(), tracer: any Tracer = NoOpTracer()
    ) {
        self.tracer = tracer
        self.ffmpegPath = ffmpegPath
        self.ffprobePath = ffprobePath
        self.timeLimit = timeLimit
        self.maxOutputBytes = maxOutputBytes
        self.temporaryDirectory = temporaryDirectory
    }

    /// nil when a program is missing. A nil path means: look for it on `PATH`.
    public static func locate(ffmpegPath: String?, ffprobePath: String?, tracer: any Tracer = NoOpTracer()) -> FFmpegAudioTranscoder? {
        guard let ffmpeg = executable(ffmpegPath, named: "ffmpeg"), let ffprobe = executable(ffprobePath, named: "ffprobe") else {
            return nil
        }
        return FFmpegAudioTranscoder(ffmpegPath: ffmpeg, ffprobePath: ffprobe, tracer: tracer)
    }

    private static func executable(_ path: String?, named name: String) -> String? {
        if let path {
            return FileManager.default.isExecutableFile(atPath: path) ? path : nil
        }
        let searchPath = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in searchPath.split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    public func transcodeForTranscription(_ audio: ByteBuffer, fileExtension: String) async throws -> TranscodedAudio {
        try await tracer.withSpan("ffmpeg transcode", ofKind: .internal) { span in
            span.attributes["aisaas.audio.input_format"] = fileExtension
            span.attributes["aisaas.audio.input_bytes"] = audio.readableBytes
            let transcoded = try await transcode(audio, fileExtension: fileExtension)
            span.attributes["aisaas.audio.duration_seconds"] = transcoded.durationSeconds
            return transcoded
        }
    }

    private func transcode(_ audio: ByteBuffer, fileExtension: String) async throws -> TranscodedAudio {
        let format = fileExtension.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "."))
        guard Self.supportedExtensions.contains(format) else {
            throw DomainError(
                .invalidArgument, "audio format \(format.quotedForMessage) is not supported; use one of \(Self.supportedExtensions.sorted().joined(separator: ", "))",
                reason: ErrorReason.unsupportedAudioFormat.rawValue)
        }
        guard audio.readableBytes > 0 else { throw Self.undecodable }

        let directory = try makePrivateDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let input = directory + "/input." + format
        let output = directory + "/output.mp3"
        guard FileManager.default.createFile(atPath: input, contents: Data(buffer: audio), attributes: [.posixPermissions: 0o600]) else {
            throw DomainError(.internal, "could not store the audio for conversion")
        }

        let inputDuration = try await duration(of: input, directory: directory)
        let converted = try await run(
            ffmpegPath,
            ["-nostdin", "-hide_banner", "-loglevel", "error", "-y"] + Self.inputGuards
                + ["-i", input, "-vn", "-map", "0:a:0", "-map_metadata", "-1", "-ac", "1", "-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3", output],
            directory: directory)
        guard converted.exitStatus == 0,
            let size = (try? FileManager.default.attributesOfItem(atPath: output))?[.size] as? Int, size > 0
        else {
            throw Self.undecodable
        }
        guard size <= maxOutputBytes else {
            throw DomainError(.invalidArgument, "the audio is too long to transcribe")
        }
        guard let mp3 = FileManager.default.contents(atPath: output) else { throw Self.undecodable }

        // Containers written by browsers (webm) often carry no duration, and a crafted header may
        // understate it: what was actually decoded counts too, since transcription is billed by it.
        let decodedDuration = try await duration(of: output, directory: directory)
        // The encoder pads a few frames, hence the tolerance before the decoded length wins.
        let seconds: Double
        switch (inputDuration, decodedDuration) {
        case (let input?, let decoded?): seconds = decoded > input + 1 ? decoded : input
        case (let input?, nil): seconds = input
        case (nil, let decoded?): seconds = decoded
        case (nil, nil): throw Self.undecodable
        }
        return TranscodedAudio(mp3: ByteBuffer(data: mp3), durationSeconds: seconds)
    }

    static let undecodable = DomainError(.invalidArgument, "the audio could not be decoded", reason: ErrorReason.undecodableAudio.rawValue)

    /// Local files only, and only the demuxers of the supported formats.
    private static let inputGuards = ["-protocol_whitelist", "file", "-format_whitelist", allowedDemuxers]

    /// The container's duration in seconds; nil when it does not say. Throws when unreadable.
    private func duration(of path: String, directory: String) async throws -> Double? {
        let probe = try await run(
            ffprobePath,
            ["-v", "error"] + Self.inputGuards
                + ["-show_entries", "format=duration", "-of", "default=noprint_wrappers=1:nokey=1", path],
            directory: directory)
        guard probe.exitStatus == 0 else { throw Self.undecodable }
        let text = String(decoding: probe.standardOutput, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let seconds = Double(text), seconds.isFinite, seconds >= 0 else { return nil }
        return seconds
    }

    private func run(_ program: String, _ arguments: [String], directory: String) async throws -> ChildProcess.Outcome {
        do {
            return try await ChildProcess.run(program, arguments, outputDirectory: directory, timeLimit: timeLimit)
        } catch is ChildProcess.TimedOut {
            throw DomainError(.deadlineExceeded, "converting the audio took too long")
        } catch let error as CancellationError {
            throw error
        } catch {
            throw DomainError(.internal, "the audio converter could not be started")
        }
    }

    private func makePrivateDirectory() throws -> String {
        let root = temporaryDirectory.hasSuffix("/") ? temporaryDirectory : temporaryDirectory + "/"
        let path = root + "aisaas-audio-" + UUID().uuidString
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        } catch {
            throw DomainError(.internal, "could not create a folder for audio conversion")
        }
        return path
    }
}
