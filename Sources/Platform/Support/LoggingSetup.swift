import Foundation
import Logging
import Synchronization

/// Installs the process-wide log handler once. Every line carries the request id of the request
/// being served (see `Logger.requestScopeMetadataProvider`).
public enum LoggingSetup {
    private static let bootstrapped = Mutex(false)

    public static func bootstrap(level: Logger.Level) {
        let first = bootstrapped.withLock { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        LoggingSystem.bootstrap(
            { label, provider in
                var handler = StreamLogHandler.standardError(label: label, metadataProvider: provider)
                handler.logLevel = level
                return handler
            },
            metadataProvider: Logger.requestScopeMetadataProvider
        )
    }
}
