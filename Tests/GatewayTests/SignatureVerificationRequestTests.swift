import AKSKSigning
import Foundation
import Testing
@testable import Gateway

/// What the gateway adds to the pure checker of `AKSKSigning`: the user service's request and
/// the statuses of its reasons.
@Suite("gateway: signed requests and the user service")
struct SignatureVerificationRequestTests {
    @Test("a verification becomes the VerifySignature request, its nonce remembered until the signature expires")
    func request() {
        let expiresAt = Date(timeIntervalSince1970: 1_767_323_345)
        var verification = SignatureVerification(
            accessKey: "Zx8Kq2LmN4pR6tV8wY0a", authStringPrefix: "cc-auth-v1/Zx8Kq2LmN4pR6tV8wY0a/2026-01-02T03:04:05Z/300",
            canonicalRequest: "GET\n/x\n\nhost:h", signature: String(repeating: "a", count: 64), nonce: nil, expiresAt: expiresAt
        )
        let plain = verification.request
        #expect(plain.accessKey == verification.accessKey && plain.authStringPrefix == verification.authStringPrefix)
        #expect(plain.canonicalRequest == verification.canonicalRequest && plain.signature == verification.signature)
        #expect(!plain.hasNonce && plain.nonceExpiresAt == 1_767_323_345_000)
        verification.nonce = "0123456789abcdef"
        #expect(verification.request.nonce == "0123456789abcdef")
    }

    @Test("the user service's reasons map to the documented statuses")
    func serviceReasons() {
        #expect(SignedRequestRejection.status(forServiceReason: "InvalidAccessKeyId") == 403)
        #expect(SignedRequestRejection.status(forServiceReason: "AccessDenied") == 403)
        #expect(SignedRequestRejection.status(forServiceReason: "SignatureDoesNotMatch") == 400)
        #expect(SignedRequestRejection.status(forServiceReason: "NonceReused") == 409)
        #expect(SignedRequestRejection.status(forServiceReason: "QuotaExceeded") == nil)
    }
}
