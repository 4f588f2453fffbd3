import NIOSSL

/// `ETCD_CA_FILE`, `ETCD_CERT_FILE`, `ETCD_KEY_FILE`: how the platform trusts etcd over
/// `https://` (a private CA instead of the system's roots) and proves itself to an etcd that
/// checks client certificates (`--client-cert-auth`). Read once at start: certificates are static.
public enum EtcdTLS {
    /// The TLS configuration the files describe, or nil when none is set; a missing, unreadable or
    /// unparsable file, or a certificate without its key, is reported on `settings`.
    public static func read(_ settings: SettingsReader) -> TLSConfiguration? {
        let caFile = settings.string("etcd.ca.file")
        let certFile = settings.string("etcd.cert.file")
        let keyFile = settings.string("etcd.key.file")
        guard caFile != nil || certFile != nil || keyFile != nil else { return nil }
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let caFile {
            do {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
            } catch {
                settings.report("ETCD_CA_FILE \(caFile.quotedForMessage) is not a readable PEM certificate file: \(error)")
            }
        }
        switch (certFile, keyFile) {
        case (let certFile?, let keyFile?):
            do {
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certFile).map { .certificate($0) }
            } catch {
                settings.report("ETCD_CERT_FILE \(certFile.quotedForMessage) is not a readable PEM certificate file: \(error)")
            }
            do {
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
            } catch {
                settings.report("ETCD_KEY_FILE \(keyFile.quotedForMessage) is not a readable PEM private key: \(error)")
            }
        case (nil, nil):
            break
        default:
            settings.report("ETCD_CERT_FILE and ETCD_KEY_FILE go together: set both or neither")
        }
        return configuration
    }
}
