import Crypto
import Foundation
import Platform

/// Seals secret keys at rest with AES-256-GCM under the master key. The user id is bound as
/// additional authenticated data, so a sealed key copied onto another user's row fails to open.
public struct SecretKeyCipher: Sendable {
    private let key: SymmetricKey

    /// `masterKey`: 32 bytes, base64-encoded.
    public init(masterKeyBase64: String) throws {
        guard let data = Data(base64Encoded: masterKeyBase64), data.count == 32 else {
            throw ConfigurationError(problems: ["SECRET_KEY_MASTER_KEY must be 32 bytes, base64-encoded"])
        }
        self.key = SymmetricKey(data: data)
    }

    public func seal(_ secretKey: String, userId: String) throws -> String {
        let box = try AES.GCM.seal(Data(secretKey.utf8), using: key, authenticating: Data(userId.utf8))
        guard let combined = box.combined else { throw DomainError(.internal, "cannot seal secret key") }
        return "v1:" + combined.base64EncodedString()
    }

    public func open(_ sealed: String, userId: String) throws -> String {
        guard sealed.hasPrefix("v1:"), let combined = Data(base64Encoded: String(sealed.dropFirst(3))) else {
            throw DomainError(.internal, "stored secret key has an unknown format")
        }
        let box = try AES.GCM.SealedBox(combined: combined)
        let plain = try AES.GCM.open(box, using: key, authenticating: Data(userId.utf8))
        return String(decoding: plain, as: UTF8.self)
    }
}
