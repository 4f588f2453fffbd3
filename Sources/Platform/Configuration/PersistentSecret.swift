import Foundation
#if canImport(Glibc)
import Glibc
#endif
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
        let path = directory.appendingPathComponent(name).path
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let value = Data(RandomText.bytes(byteCount)).base64EncodedString()
        // Created exclusively and owner-only: a second process starting at the same moment reads
        // the first one's secret instead of replacing it, and a stored secret is never overwritten.
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        if descriptor >= 0 {
            let written = value.utf8CString.withUnsafeBufferPointer { write(descriptor, $0.baseAddress, $0.count - 1) }
            close(descriptor)
            guard written == value.utf8.count else {
                throw ConfigurationError(problems: ["cannot write \(path) to store a generated \(settingName)"])
            }
            logger.warning("\(settingName) is not set: generated one and stored it in \(path). Production must set \(settingName).")
            return value
        }
        guard errno == EEXIST else {
            throw ConfigurationError(problems: ["cannot create \(path) to store a generated \(settingName): errno \(errno)"])
        }
        // Another process may be writing it right now: give it a moment to finish.
        for _ in 0..<50 {
            if let stored = try? String(contentsOfFile: path, encoding: .utf8) {
                let trimmed = stored.trimmingCharacters(in: .whitespacesAndNewlines)
                if !trimmed.isEmpty {
                    logger.warning("\(settingName) is not set: using the one generated in \(path). Production must set \(settingName).")
                    return trimmed
                }
            }
            usleep(20_000)
        }
        throw ConfigurationError(problems: ["\(path) exists but holds no readable \(settingName); fix or remove it, or set \(settingName)"])
    }
}
