import Foundation
import Prometheus
import Synchronization

/// The process's own series, read from `/proc/self` at each scrape: resident and virtual memory,
/// CPU seconds, open and allowed file descriptors, start time, and `aisaas_build_info`.
final class ProcessMetrics: Sendable {
    private let residentMemory: Gauge
    private let virtualMemory: Gauge
    private let cpuSeconds: Prometheus.Counter
    private let openFileDescriptors: Gauge
    private let maxFileDescriptors: Gauge
    private let lastCPUSeconds = Mutex<Double>(0)

    init(registry: PrometheusCollectorRegistry, build: BuildInfo) {
        residentMemory = registry.makeGauge(descriptor: .named("process_resident_memory_bytes", help: "Resident memory size in bytes."))
        virtualMemory = registry.makeGauge(descriptor: .named("process_virtual_memory_bytes", help: "Virtual memory size in bytes."))
        cpuSeconds = registry.makeCounter(descriptor: .named("process_cpu_seconds_total", help: "Total user and system CPU time spent in seconds."))
        openFileDescriptors = registry.makeGauge(descriptor: .named("process_open_fds", help: "Number of open file descriptors."))
        maxFileDescriptors = registry.makeGauge(descriptor: .named("process_max_fds", help: "Maximum number of open file descriptors."))
        let startTime = registry.makeGauge(descriptor: .named("process_start_time_seconds", help: "Start time of the process since unix epoch in seconds."))
        startTime.set(to: Self.startTimeSeconds() ?? Date().timeIntervalSince1970)
        let info = registry.makeGauge(
            descriptor: .named("aisaas_build_info", help: "The running build: always 1, labelled with its version and commit."),
            labels: [("version", build.version), ("commit", build.commit)]
        )
        info.set(to: 1)
        update()
    }

    /// Reads the current values; called before each exposition.
    func update() {
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) {
            for line in status.split(separator: "\n") {
                if line.hasPrefix("VmRSS:"), let kib = Self.kibibytes(line) { residentMemory.set(to: kib * 1024) }
                if line.hasPrefix("VmSize:"), let kib = Self.kibibytes(line) { virtualMemory.set(to: kib * 1024) }
            }
        }
        if let fields = Self.statFields() {
            // utime and stime (fields 14 and 15 of stat), in clock ticks.
            let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
            if fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]), ticks > 0 {
                let total = (user + system) / ticks
                let delta = lastCPUSeconds.withLock { last in
                    defer { last = max(last, total) }
                    return total - last
                }
                if delta > 0 { cpuSeconds.increment(by: delta) }
            }
        }
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            openFileDescriptors.set(to: Double(entries.count))
        }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { maxFileDescriptors.set(to: Double(limit.rlim_cur)) }
    }

    private static func kibibytes(_ line: Substring) -> Double? {
        line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Double($0) }
    }

    /// The fields of `/proc/self/stat` after the command name (which may contain spaces).
    private static func statFields() -> [Substring]? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ")
    }

    /// Boot time plus the process's start in clock ticks after boot (field 22 of stat).
    private static func startTimeSeconds() -> Double? {
        guard let fields = statFields(), fields.count > 19, let startTicks = Double(fields[19]),
              let procStat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let bootLine = procStat.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
              let boot = Double(bootLine.dropFirst("btime ".count)) else { return nil }
        return boot + startTicks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

/// What `aisaas_build_info` reports.
public struct BuildInfo: Sendable {
    public var version: String
    public var commit: String

    public init(version: String, commit: String) {
        self.version = version
        self.commit = commit
    }

    /// This build: the version of the sources, and the commit `BUILD_COMMIT` names (set by the
    /// deployment, which knows what it built).
    public static func current(commit: String?) -> BuildInfo {
        BuildInfo(version: platformVersion, commit: commit.flatMap { $0.isEmpty ? nil : String($0.prefix(64)) } ?? "unknown")
    }

    public static let platformVersion = "0.11.0"
}

extension MetricNameDescriptor {
    /// The descriptor of a series whose full name is given: its last word is the unit
    /// (`process_open_fds`: `fds`), as the descriptor wants them apart.
    static func named(_ name: String, help: String) -> MetricNameDescriptor {
        let unitStart = name.lastIndex(of: "_") ?? name.startIndex
        let unit = name[unitStart...].drop { $0 == "_" }
        return MetricNameDescriptor(metricName: String(name[..<unitStart]), unitName: String(unit), helpText: help)
    }
}
