import Foundation
import Logging
import OTel
import Synchronization

/// Installs the process-wide log handler once. Every line carries the request id of the request
/// being served (see `Logger.requestScopeMetadataProvider`).
public enum LoggingSetup {
    private static let bootstrapped = Mutex(false)
    /// The level of every logger made after `bootstrap`; `LOG_LEVEL` changes it while the process runs.
    public static let processLevel = LiveLogLevel(.info)

    public static func bootstrap(level: Logger.Level, format: LogFormat = .text) {
        let first = bootstrapped.withLock { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        processLevel.set(level)
        LoggingSystem.bootstrap(
            { label, provider in
                PlatformLogHandler(label: label, level: processLevel, format: format, metadataProvider: provider)
            },
            metadataProvider: .multiplex([Logger.requestScopeMetadataProvider, Logger.traceMetadataProvider])
        )
    }
}

extension Logger {
    /// The current span's trace and span ids, when tracing is on (after the request scope's, so
    /// these win over a client's trace id).
    public static let traceMetadataProvider: Logger.MetadataProvider = {
        var keys = OTel.Configuration.LoggingMetadataProviderConfiguration.default
        keys.traceIDKey = "trace-id"
        keys.spanIDKey = "span-id"
        keys.traceFlagsKey = "trace-flags"
        let spans = OTel.makeLoggingMetadataProvider(configuration: keys)
        return Logger.MetadataProvider {
            var metadata = spans.get()
            metadata["trace-flags"] = nil
            return metadata
        }
    }()
}

/// A log level shared by loggers and changed while they live: one atomic load per log call.
public final class LiveLogLevel: Sendable {
    private static let levels = Logger.Level.allCases
    private let index: Atomic<Int>

    public init(_ level: Logger.Level) {
        index = Atomic(Self.levels.firstIndex(of: level) ?? 2)
    }

    public var level: Logger.Level { Self.levels[index.load(ordering: .relaxed)] }

    public func set(_ level: Logger.Level) {
        index.store(Self.levels.firstIndex(of: level) ?? 2, ordering: .relaxed)
    }
}
