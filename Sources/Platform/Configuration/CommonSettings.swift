import Logging

/// Settings every process reads.
public struct CommonSettings: Sendable {
    /// Folder for SQLite files and generated secrets.
    public var dataDirectory: String
    public var logLevel: Logger.Level
    /// `SHUTDOWN_DRAIN_SECONDS`: how long a stopping process lets calls in flight finish before it
    /// cuts them short.
    public var drainTime: Duration = .seconds(30)
    /// `LOG_FORMAT`: `text` (default) or `json`, one object per line.
    public var logFormat: LogFormat = .text

    public init(dataDirectory: String, logLevel: Logger.Level, drainTime: Duration = .seconds(30), logFormat: LogFormat = .text) {
        self.dataDirectory = dataDirectory
        self.logLevel = logLevel
        self.drainTime = drainTime
        self.logFormat = logFormat
    }

    /// `LOG_LEVEL`, which applies without a restart.
    public static func readLogLevel(_ settings: SettingsReader) -> Logger.Level {
        let levelText = settings.string("log.level", default: "info").lowercased()
        return Logger.Level(rawValue: levelText) ?? {
            settings.report("LOG_LEVEL must be one of trace, debug, info, notice, warning, error, critical; got '\(levelText)'")
            return .info
        }()
    }

    public static func read(_ settings: SettingsReader) -> CommonSettings {
        let level = readLogLevel(settings)
        let formatText = settings.string("log.format", default: "text").lowercased()
        let format = LogFormat(rawValue: formatText) ?? {
            settings.report("LOG_FORMAT must be text or json; got \(formatText.quotedForMessage)")
            return .text
        }()
        let drain = settings.int("shutdown.drain.seconds", default: 30, range: 1...3600)
        return CommonSettings(
            dataDirectory: settings.string("data.dir", default: "./data"), logLevel: level, drainTime: .seconds(drain), logFormat: format
        )
    }
}
