import AISaaSProtos
import AKSKSigning
import Platform

extension SignatureVerification {
    /// The user service's VerifySignature request for this verification.
    public var request: Grpc_User_V1_VerifySignatureRequest {
        .with {
            $0.accessKey = accessKey
            $0.authStringPrefix = authStringPrefix
            $0.canonicalRequest = canonicalRequest
            $0.signature = signature
            if let nonce { $0.nonce = nonce }
            $0.nonceExpiresAt = expiresAt.millisecondsSince1970
        }
    }
}

extension SignedRequestRejection {
    /// The HTTP status for a `reason` the user service's VerifySignature failed with
    /// (trailer `x-error-reason`), or nil for a reason it does not send.
    public static func status(forServiceReason reason: String) -> Int? {
        guard let known = ErrorReason(rawValue: reason), known.isProtocolMessage else { return nil }
        return known.httpStatus
    }
}
