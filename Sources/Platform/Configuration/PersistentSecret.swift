import Foundation
import Logging

/// A secret that production sets in configuration and a laptop install generates once: on first
/// use it is written under the data folder, readable by the owner only, and reused afterwards.
public enum PersistentSecret {
    /// Returns the configured value, or the one stored at `dataDirectory/secrets/name`, creating it
    /// (`byteCount` random bytes, base64) if there is none.
    public static func resolve(
        configured: String?,
        name: String,
        settingName: String,
        byteCount: Int,
        dataDirectory: String,
        logger: Logger
    ) throws -> String {
        if let configured { return configured }
        let directory = URL(fileURLWithPath: dataDirectory).appendingPathComponent("secrets")
        let file = directory.appendingPathComponent(name)
        let manager = FileManager.default
        if let stored = try? String(contentsOf: file, encoding: .utf8) {
            let trimmed = stored.trimmingCharacters(in: .whitespacesAndNewlines)
            if !trimmed.isEmpty {
                logger.warning("\(settingName) is not set: using the one generated in \(file.path). Production must set \(settingName).")
                return trimmed
            }
        }
        try manager.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let value = Data(RandomText.bytes(byteCount)).base64EncodedString()
        // Created with mode 0600 from the start so the secret is never readable by others.
        guard manager.createFile(atPath: file.path, contents: Data(value.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw ConfigurationError(problems: ["cannot write \(file.path) to store a generated \(settingName)"])
        }
        logger.warning("\(settingName) is not set: generated one and stored it in \(file.path). Production must set \(settingName).")
        return value
    }
}
