import Foundation
import NIOSSL

/// A certificate authority made for one test with openssl, and a server certificate for
/// 127.0.0.1 and a client certificate it signed (PEM files in `folder`). The server's is for
/// client authentication too: etcd's JSON gateway calls etcd itself with it.
public struct TestCertificates: Sendable {
    public let authority: String
    public let serverCertificate: String
    public let serverKey: String
    public let clientCertificate: String
    public let clientKey: String

    public init(in folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        authority = folder + "/ca.pem"
        serverCertificate = folder + "/server.pem"
        serverKey = folder + "/server.key"
        clientCertificate = folder + "/client.pem"
        clientKey = folder + "/client.key"
        let authorityKey = folder + "/ca.key"
        try Self.openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", authorityKey,
                          "-out", authority, "-days", "2", "-subj", "/CN=aisaas test CA"])
        for (name, key, certificate, usage) in [
            ("127.0.0.1", serverKey, serverCertificate, "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth"),
            ("aisaas test client", clientKey, clientCertificate, "extendedKeyUsage=clientAuth"),
        ] {
            let request = certificate + ".csr", extensions = certificate + ".ext"
            try Data(usage.utf8).write(to: URL(fileURLWithPath: extensions))
            try Self.openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", request, "-subj", "/CN=\(name)"])
            try Self.openssl(["x509", "-req", "-in", request, "-CA", authority, "-CAkey", authorityKey, "-CAcreateserial", "-out", certificate,
                              "-days", "2", "-extfile", extensions])
        }
    }

    /// Trusts the test CA and presents the client certificate.
    public func clientConfiguration() throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(authority))
        configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(clientCertificate).map { .certificate($0) }
        configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: clientKey, format: .pem))
        return configuration
    }

    private static func openssl(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TestCertificateError("openssl \(arguments.joined(separator: " ")) failed: \(String(decoding: data, as: UTF8.self))")
        }
    }
}

public struct TestCertificateError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
