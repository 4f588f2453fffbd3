import Foundation
import Synchronization

/// The process's environment as it started, for the settings. swift-otel applies some OTEL_*
/// variables over the configuration the platform gives it whenever a pipeline is made:
/// OTEL_SERVICE_NAME would name the three components of `aisaas all` alike, and OTEL_TRACES_SAMPLER
/// would sample a second time after `LiveSamplingTracer`. `withholdFromLibraries()` takes them out
/// of the live environment while the settings still read them here. Call it first thing in
/// `main`: `unsetenv` is safe only while no other thread reads the environment.
public enum StartupEnvironment {
    static let withheldNames = ["OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"]
    private static let snapshot = Mutex<[String: String]?>(nil)

    public static func withholdFromLibraries() {
        snapshot.withLock { $0 = ProcessInfo.processInfo.environment }
        for name in withheldNames { unsetenv(name) }
    }

    /// What the settings read: the environment as it started when variables were withheld,
    /// otherwise the live one.
    public static var variables: [String: String] {
        snapshot.withLock { $0 } ?? ProcessInfo.processInfo.environment
    }

    /// The withheld variables a library would still find (a process whose `main` did not
    /// withhold them: an embedding program, a test).
    static var visibleToLibraries: [String] {
        withheldNames.filter { getenv($0) != nil }
    }
}
