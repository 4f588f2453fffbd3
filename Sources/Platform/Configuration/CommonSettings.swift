import Logging

/// Settings every process reads.
public struct CommonSettings: Sendable {
    /// Folder for SQLite files and generated secrets.
    public var dataDirectory: String
    public var logLevel: Logger.Level

    public static func read(_ settings: SettingsReader) -> CommonSettings {
        let levelText = settings.string("log.level", default: "info").lowercased()
        let level = Logger.Level(rawValue: levelText) ?? {
            settings.report("LOG_LEVEL must be one of trace, debug, info, notice, warning, error, critical; got '\(levelText)'")
            return .info
        }()
        return CommonSettings(dataDirectory: settings.string("data.dir", default: "./data"), logLevel: level)
    }
}
