import Foundation
import Platform
import Testing
@testable import UserService

@Suite("user domain")
struct DomainTests {
    @Test("a sealed secret opens only with the same key and the same user id")
    func cipher() throws {
        let cipher = try SecretKeyCipher(masterKeyBase64: UserServiceHarness.masterKey)
        let sealed = try cipher.seal("secret-value", userId: "user-1")
        #expect(try cipher.open(sealed, userId: "user-1") == "secret-value")
        #expect(throws: (any Error).self) { try cipher.open(sealed, userId: "user-2") }
        let other = try SecretKeyCipher(masterKeyBase64: Data(repeating: 7, count: 32).base64EncodedString())
        #expect(throws: (any Error).self) { try other.open(sealed, userId: "user-1") }
        #expect(throws: ConfigurationError.self) { try SecretKeyCipher(masterKeyBase64: "c2hvcnQ=") }
    }

    @Test("passwords past bcrypt's 72 bytes still count in full")
    func longPasswords() async throws {
        let hasher = PasswordHasher(cost: 4)
        let long = String(repeating: "a", count: 80)
        let hash = try await hasher.hash(long)
        #expect(try await hasher.verify(long, hash: hash))
        #expect(!(try await hasher.verify(String(repeating: "a", count: 79) + "b", hash: hash)))
    }

    @Test("keys are 20 or 40 characters of [A-Za-z0-9_]")
    func keyShape() {
        #expect(UserManager.isKey("Zx8Kq2LmN4pR6tV8wY0a", length: 20))
        #expect(!UserManager.isKey("Zx8Kq2LmN4pR6tV8wY0", length: 20))
        #expect(!UserManager.isKey("Zx8Kq2LmN4pR6tV8wY0-", length: 20))
    }
}
