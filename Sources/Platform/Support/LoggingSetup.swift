import Foundation
import Logging
import Synchronization

/// Installs the process-wide log handler once. Every line carries the request id of the request
/// being served (see `Logger.requestScopeMetadataProvider`).
public enum LoggingSetup {
    private static let bootstrapped = Mutex(false)

    public static func bootstrap(level: Logger.Level, format: LogFormat = .text) {
        let first = bootstrapped.withLock { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        LoggingSystem.bootstrap(
            { label, provider in
                PlatformLogHandler(label: label, level: level, format: format, metadataProvider: provider)
            },
            metadataProvider: Logger.requestScopeMetadataProvider
        )
    }
}
