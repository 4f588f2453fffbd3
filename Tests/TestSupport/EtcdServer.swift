import Foundation
import Platform
#if canImport(Glibc)
import Glibc
import Synchronization
#endif

/// A throwaway etcd (Debian's `etcd-server`) on loopback ports, its data in a folder of its own.
/// `stop()` and `start()` again keep the data, as a restarted member would.
public final class EtcdServer: @unchecked Sendable {
    // Used from one test task at a time; `process` is only touched by start and stop.
    public let clientPort: Int
    public let peerPort: Int
    public let directory: TemporaryDirectory
    private var process: Process?
    /// With TLS: its certificates, and etcd asks clients for one signed by the same CA.
    public let certificates: TestCertificates?

    public var endpoint: String { "\(certificates == nil ? "http" : "https")://127.0.0.1:\(clientPort)" }

    public static var binary: String? {
        ["/usr/bin/etcd", "/usr/local/bin/etcd"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// `tls`: serve clients over TLS with certificates made for the test, requiring client ones.
    public init(tls: Bool = false) throws {
        clientPort = try LoopbackPort.free()
        peerPort = try LoopbackPort.free()
        directory = try TemporaryDirectory()
        certificates = tls ? try TestCertificates(in: directory.path + "/tls") : nil
    }

    /// Starts etcd and waits until it answers.
    public func start() async throws {
        guard let binary = Self.binary else { throw EtcdServerError("Debian's etcd-server package is needed (scripts/test.sh installs it)") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [
            "--name", "test", "--data-dir", directory.path + "/data",
            "--listen-client-urls", endpoint, "--advertise-client-urls", endpoint,
            "--listen-peer-urls", "http://127.0.0.1:\(peerPort)", "--initial-advertise-peer-urls", "http://127.0.0.1:\(peerPort)",
            "--initial-cluster", "test=http://127.0.0.1:\(peerPort)", "--log-level", "error",
        ]
        if let certificates {
            process.arguments? += [
                "--cert-file", certificates.serverCertificate, "--key-file", certificates.serverKey,
                "--client-cert-auth", "--trusted-ca-file", certificates.authority,
            ]
        }
        var environment = ProcessInfo.processInfo.environment
        environment["ETCD_UNSUPPORTED_ARCH"] = environment["ETCD_UNSUPPORTED_ARCH"] ?? ""
        process.environment = environment
        let log = directory.path + "/etcd.log"
        if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        self.process = process
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if await answers() { return }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw EtcdServerError("etcd did not start: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
    }

    public func stop() {
        guard let process else { return }
        process.terminate()
        process.waitUntilExit()
        self.process = nil
    }

    public func remove() {
        stop()
        directory.remove()
    }

    private func answers() async -> Bool {
        (try? await EtcdClient(endpoints: [endpoint], tls: certificates?.clientConfiguration()).range(prefix: "/")) != nil
    }
}

public struct EtcdServerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Loopback ports for servers the tests start.
public enum LoopbackPort {
    /// Ports handed out in this process: suites run in parallel, and two of them must never be
    /// given one port between its check and a child's bind.
    private static let handedOut = Mutex<Set<Int>>([])

    /// A loopback port that was free a moment ago and not handed out before in this process.
    /// Picked below Linux's ephemeral range (32768–60999), so outgoing connections of other tests
    /// cannot take it before the child binds.
    public static func free() throws -> Int {
        for _ in 0..<100 {
            let port = Int.random(in: 20_000..<32_000)
            guard handedOut.withLock({ $0.insert(port).inserted }) else { continue }
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw EtcdServerError("socket() failed") }
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if bound == 0 { return port }
        }
        throw EtcdServerError("no free port found")
    }
}
