import Configuration
import Foundation
import Testing
import TestSupport
@testable import Platform

/// etcd over TLS with client certificates (`--client-cert-auth`), as production clusters run it.
@Suite("etcd over TLS", .serialized)
struct EtcdTLSTests {
    func discovery(_ values: [String: String]) throws -> DiscoverySettings {
        let settings = SettingsReader(ConfigurationLoader.fixed(values))
        let discovery = DiscoverySettings.read(settings)
        try settings.finish()
        return discovery
    }

    @Test("with ETCD_CA_FILE, ETCD_CERT_FILE and ETCD_KEY_FILE the registry and watches work; without the client certificate or the CA, etcd is not reached")
    func clientCertificates() async throws {
        let etcd = try EtcdServer(tls: true)
        defer { etcd.remove() }
        try await etcd.start()
        let certificates = try #require(etcd.certificates)
        let base = ["DISCOVERY": "etcd", "ETCD_ENDPOINTS": etcd.endpoint]
        let full = base.merging([
            "ETCD_CA_FILE": certificates.authority, "ETCD_CERT_FILE": certificates.clientCertificate, "ETCD_KEY_FILE": certificates.clientKey,
        ]) { $1 }
        let store = try #require(try discovery(full).makeStore())
        try await store.put(key: "/tls/services/a/1", value: "one", lease: nil)
        let (entries, revision) = try await store.range(prefix: "/tls/services/")
        #expect(entries == [RegistryEntry(key: "/tls/services/a/1", value: "one")])
        let watch = Task {
            for try await changes in store.watch(prefix: "/tls/services/", after: revision) { return changes }
            return []
        }
        try await Task.sleep(for: .milliseconds(300))
        try await store.put(key: "/tls/services/a/2", value: "two", lease: nil)
        #expect(try await watch.value == [.put(RegistryEntry(key: "/tls/services/a/2", value: "two"))])

        // Trusting the CA but presenting no certificate: etcd ends the handshake.
        let anonymous = try #require(try discovery(base.merging(["ETCD_CA_FILE": certificates.authority]) { $1 }).makeStore())
        await #expect(throws: (any Error).self) { _ = try await anonymous.range(prefix: "/tls/") }
        // The system's roots do not know the test CA.
        let untrusting = try #require(try discovery(base).makeStore())
        await #expect(throws: (any Error).self) { _ = try await untrusting.range(prefix: "/tls/") }
    }

    @Test("a missing or unparsable file, or a certificate without its key, is a configuration error naming the setting")
    func badFiles() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let garbage = directory.path + "/garbage.pem"
        try Data("not a certificate".utf8).write(to: URL(fileURLWithPath: garbage))
        let cases: [([String: String], String)] = [
            (["ETCD_CA_FILE": directory.path + "/missing.pem"], "ETCD_CA_FILE"),
            (["ETCD_CA_FILE": garbage], "ETCD_CA_FILE"),
            (["ETCD_CERT_FILE": garbage, "ETCD_KEY_FILE": garbage], "ETCD_CERT_FILE"),
            (["ETCD_CERT_FILE": garbage], "ETCD_CERT_FILE and ETCD_KEY_FILE go together"),
        ]
        for (values, named) in cases {
            do {
                _ = try discovery(values.merging(["DISCOVERY": "etcd"]) { $1 })
                Issue.record("\(values) was accepted")
            } catch let error as ConfigurationError {
                #expect(error.problems.contains { $0.contains(named) }, "\(error.problems)")
            }
        }
    }
}
