import Crypto
import Foundation
import HummingbirdBcrypt
import NIOPosix
import Platform
import Synchronization

/// bcrypt password hashing, run on a thread pool: a hash takes tens to hundreds of milliseconds
/// of CPU and must not hold up the cooperative threads that serve other requests.
public final class PasswordHasher: Sendable {
    public let cost: UInt8
    /// A hash of a random password at `cost`, made on first use.
    private let decoyHash = Mutex<String?>(nil)

    public init(cost: UInt8 = 12) {
        self.cost = cost
    }

    public func hash(_ password: String) async throws -> String {
        let input = Self.bcryptInput(password)
        let cost = cost
        return try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(input, cost: cost) }
    }

    public func verify(_ password: String, hash: String) async throws -> Bool {
        let input = Self.bcryptInput(password)
        return try await NIOThreadPool.singleton.runIfActive { Bcrypt.verify(input, hash: hash) }
    }

    /// Spends the time of a real check without a real hash, so that response times do not tell
    /// whether a username exists.
    public func verifyDecoy(_ password: String) async throws {
        let decoy: String
        if let cached = decoyHash.withLock({ $0 }) {
            decoy = cached
        } else {
            decoy = try await hash(RandomText.alphanumeric(20))
            decoyHash.withLock { $0 = decoy }
        }
        _ = try await verify(password, hash: decoy)
    }

    /// bcrypt reads at most 72 bytes and stops at a NUL byte: every password is first hashed
    /// with SHA-256 and base64-encoded (44 bytes, no NUL), so all of it counts.
    static func bcryptInput(_ password: String) -> String {
        Data(SHA256.hash(data: Data(password.utf8))).base64EncodedString()
    }
}
