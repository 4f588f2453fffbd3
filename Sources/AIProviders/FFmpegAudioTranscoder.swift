import Foundation
import NIOCore
import NIOFoundationCompat
import Platform
import Tracing
import WireFormats

/// Converts uploads to mono 16 kHz MP3 with the `ffmpeg` program and measures them with `ffprobe`.
///
/// The MP3 must fit the provider's upload limit (OpenAI's: 25 MB) whatever the upload's length:
/// 64 kbit/s up to about 50 minutes, less for longer audio, down to 16 kbit/s (about three and a
/// half hours in 24 MiB, still clear speech at 16 kHz). Longer audio is refused before any
/// decoding when its container says how long it is, and after at most that much decoding when it
/// does not (or lies). Conversions beyond `maxConcurrentConversions` wait for a turn: each takes a
/// core for as long as it runs.
public struct FFmpegAudioTranscoder: AudioTranscoding {
    /// Upload extensions accepted, as OpenAI's transcription endpoint does.
    public static let supportedExtensions = Set(AudioFormats.transcriptionUploads)
    /// MP3 bit rates used, best first (all valid for 16 kHz mono MPEG-2 Layer III).
    static let bitRates = [64_000, 48_000, 32_000, 24_000, 16_000]
    static let lowestBitRate = 16_000
    /// The rate for audio whose length its container does not give (browser recordings, often).
    static let unknownLengthBitRate = 32_000

    /// Demuxers ffmpeg may pick for those formats. ffmpeg guesses the format from the content, not
    /// the name, so without this a crafted "mp3" could be a playlist that makes ffmpeg open other
    /// files or URLs.
    static let allowedDemuxers = "mp3,mov,mp4,m4a,3gp,3g2,mj2,wav,matroska,webm,mpeg,flac,ogg"

    public let ffmpegPath: String
    public let ffprobePath: String
    /// Limit for each child process.
    public var timeLimit: Duration
    /// The MP3's limit: the provider's upload limit, with room for the form around it.
    public var maxOutputBytes: Int
    private let turns: ConcurrencyLimit
    /// Where each conversion gets a private folder, removed when it ends.
    public var temporaryDirectory: String
    /// Each conversion is a span (`ffmpeg transcode`) when tracing is on.
    public var tracer: any Tracer

    public init(
        ffmpegPath: String, ffprobePath: String, timeLimit: Duration = .seconds(120), maxOutputBytes: Int = 24 << 20,
        maxConcurrentConversions: Int = System.coreCount, temporaryDirectory: String = NSTemporaryDirectory(), tracer: any Tracer = NoOpTracer()
    ) {
        self.tracer = tracer
        turns = ConcurrencyLimit(max(1, maxConcurrentConversions))
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
            let transcoded = try await turns.run { try await transcode(audio, fileExtension: fileExtension) }
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
        let rate: Int
        if let inputDuration {
            guard let fitting = bitRate(forSeconds: inputDuration) else { throw tooLong }
            rate = fitting
        } else {
            rate = Self.unknownLengthBitRate
        }
        var converted = try await convert(input, to: output, bitRate: rate, directory: directory)
        if converted == nil, inputDuration == nil, Self.unknownLengthBitRate != Self.lowestBitRate {
            // Longer than fits at the rate for unknown lengths: once more at the lowest.
            converted = try await convert(input, to: output, bitRate: Self.lowestBitRate, directory: directory)
        }
        guard let (mp3, decoded) = converted else { throw tooLong }
        // Containers written by browsers (webm) often carry no duration, and a crafted header may
        // understate it: what was actually decoded counts too, since transcription is billed by it.
        // The encoder pads a few frames, hence the tolerance before the decoded length wins.
        let seconds = inputDuration.map { decoded > $0 + 1 ? decoded : $0 } ?? decoded
        return TranscodedAudio(mp3: ByteBuffer(data: mp3), durationSeconds: seconds)
    }

    static let undecodable = DomainError(.invalidArgument, "the audio could not be decoded", reason: ErrorReason.undecodableAudio.rawValue)

    private var tooLong: DomainError {
        let minutes = Int((maxSeconds(at: Self.lowestBitRate) - 1) / 60)
        return DomainError(.invalidArgument, "the audio is too long to transcribe: at most \(minutes) minutes")
    }

    /// How much audio fits `maxOutputBytes` at `bitRate`.
    func maxSeconds(at bitRate: Int) -> Double {
        Double(maxOutputBytes) * 8 / Double(bitRate)
    }

    /// The best rate at which `seconds` of audio fit, with a second to spare; nil when none does.
    func bitRate(forSeconds seconds: Double) -> Int? {
        Self.bitRates.first { maxSeconds(at: $0) >= seconds + 1 }
    }

    /// The MP3 of `input` at `bitRate` and its decoded length, decoding no more than fits; nil
    /// when the audio goes on beyond that.
    private func convert(_ input: String, to output: String, bitRate: Int, directory: String) async throws -> (Data, seconds: Double)? {
        let limit = maxSeconds(at: bitRate)
        let converted = try await run(
            ffmpegPath,
            ["-nostdin", "-hide_banner", "-loglevel", "error", "-y"] + Self.inputGuards
                + ["-i", input, "-vn", "-map", "0:a:0", "-map_metadata", "-1", "-t", String(format: "%.3f", limit + 1),
                   "-ac", "1", "-ar", "16000", "-c:a", "libmp3lame", "-b:a", "\(bitRate / 1000)k", "-f", "mp3", output],
            directory: directory)
        guard converted.exitStatus == 0,
            let size = (try? FileManager.default.attributesOfItem(atPath: output))?[.size] as? Int, size > 0
        else {
            throw Self.undecodable
        }
        guard let mp3 = FileManager.default.contents(atPath: output) else { throw Self.undecodable }
        guard let decoded = try await duration(of: output, directory: directory) else { throw Self.undecodable }
        return decoded <= limit && size <= maxOutputBytes ? (mp3, decoded) : nil
    }

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
