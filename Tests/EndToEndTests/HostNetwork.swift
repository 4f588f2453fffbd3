import Foundation
import Glibc

/// Several "hosts" on one machine: a Linux network namespace each, with its own address on a
/// private /24, joined by a bridge in a namespace of its own. Nothing is added to the namespace
/// the tests run in, so no traffic of these hosts can leave them; `remove()` deletes them all.
/// Needs root and Debian's iproute2.
final class HostNetwork: @unchecked Sendable {
    // Used from one test task only.
    let prefix: String
    let subnet: String
    private(set) var namespaces: [String] = []

    static let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Whether this machine can make them: root, and `ip` installed.
    static var available: Bool { getuid() == 0 && ip != nil }

    init() throws {
        prefix = "ais" + String(UInt16.random(in: 0...UInt16.max), radix: 16)
        subnet = "10.\(Int.random(in: 200...250)).\(Int.random(in: 0...255))"
        let bridge = prefix + "-net"
        try Self.run(["netns", "add", bridge])
        namespaces.append(bridge)
        try Self.run(["-n", bridge, "link", "add", "br0", "type", "bridge"])
        try Self.run(["-n", bridge, "link", "set", "br0", "up"])
    }

    /// The namespace of `host`.
    func namespace(_ host: String) -> String { prefix + "-" + host }

    /// Makes the host `host` with the address `<subnet>.<octet>`, and answers that address.
    @discardableResult
    func addHost(_ host: String, octet: Int) throws -> String {
        let namespace = namespace(host)
        let address = "\(subnet).\(octet)"
        try Self.run(["netns", "add", namespace])
        namespaces.append(namespace)
        try Self.run(["-n", namespace, "link", "set", "lo", "up"])
        // Both ends are made inside the test's namespaces: the bridge's and the host's.
        try Self.run(["-n", prefix + "-net", "link", "add", "v\(octet)", "type", "veth", "peer", "name", "eth0", "netns", namespace])
        try Self.run(["-n", prefix + "-net", "link", "set", "v\(octet)", "master", "br0", "up"])
        try Self.run(["-n", namespace, "addr", "add", address + "/24", "dev", "eth0"])
        try Self.run(["-n", namespace, "link", "set", "eth0", "up"])
        return address
    }

    /// Gives `host` its own /etc/hosts (`ip netns exec` mounts /etc/netns/<namespace>/hosts over
    /// it): the host's name resolution, as a DNS server's records would be, one line per address.
    func setHosts(_ host: String, _ records: [(address: String, name: String)]) throws {
        let folder = "/etc/netns/" + namespace(host)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let lines = ["127.0.0.1 localhost"] + records.map { "\($0.address) \($0.name)" }
        // Replaced in place: the file is mounted into processes that run there already.
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: folder + "/hosts"))
    }

    func remove() {
        for namespace in namespaces.reversed() {
            _ = try? Self.run(["netns", "del", namespace])
            try? FileManager.default.removeItem(atPath: "/etc/netns/" + namespace)
        }
        namespaces = []
    }

    /// Runs `command` in `host`'s namespace and answers its exit status and standard output.
    func run(in host: String, _ command: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        try Self.execute(["netns", "exec", namespace(host)] + command, environment: environment)
    }

    @discardableResult
    static func run(_ arguments: [String]) throws -> String {
        let (status, output) = try execute(arguments)
        guard status == 0 else { throw TestFailure("ip \(arguments.joined(separator: " ")) failed: \(output)") }
        return output
    }

    private static func execute(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        guard let ip else { throw TestFailure("iproute2's ip is not installed") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ip)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        // A file rather than a pipe: a daemon the command leaves behind (pg_ctl's server) may keep
        // a pipe open for ever.
        let outputPath = NSTemporaryDirectory() + "hostnetwork-" + UUID().uuidString
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        defer { try? output.close() }
        process.standardOutput = output
        process.standardError = output
        try process.run()
        process.waitUntilExit()
        let data = FileManager.default.contents(atPath: outputPath) ?? Data()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

extension ProcessSet {
    /// Starts `executable` (the built `aisaas` unless given) with `arguments` on `host` of `network`.
    func start(
        _ name: String, on host: String, of network: HostNetwork, _ arguments: [String], environment: [String: String], executable: String? = nil
    ) throws -> Process {
        try start(
            name, ["netns", "exec", network.namespace(host), executable ?? ProcessSet.binary.path] + arguments, environment: environment,
            executable: URL(fileURLWithPath: HostNetwork.ip ?? "/usr/sbin/ip")
        )
    }
}
