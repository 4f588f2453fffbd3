import AKSKSigning
import AISaaSProtos
import Foundation
import GRPCCore
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Platform

/// Lets a request through only with a valid cc-auth-v1 signature (aksk-v1.md). The gateway checks
/// everything that needs no secret, then `SignatureVerifier` checks the signature (with a signing
/// key the user service derived for the prefix, or by asking it) and has the nonce recorded. The handler then runs as the key's
/// owner, with the access key in the request scope (rate limits are per key).
///
/// The body is read here once the signature is known good, up to `maxBodyBytes`, so its digest can
/// be checked; handlers read the same bytes again.
struct SignedRequestMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext
    let verifier: SignatureVerifier
    let policy: SignaturePolicy
    let maxBodyBytes: Int
    let instruments: AuthInstruments
    var logger: Logger = Logger(label: "gateway.aksk")

    func handle(_ request: Request, context: Context, next: @concurrent (Request, Context) async throws -> Response) async throws -> Response {
        var request = request
        // The body is read here too (the request's body is the read one after).
        let (owner, accessKey) = try await instruments.checking("cc-auth-v1 verify", refusal: instruments.signatureRefusals) {
            try await authenticate(&request)
        }
        let scope = RequestScope(
            requestId: context.requestId, userId: owner.userId, role: owner.role, accessKey: accessKey, traceId: context.clientTraceId
        )
        return try await RequestScope.$current.withValue(scope) {
            try await next(request, context)
        }
    }

    /// Checks the signature (with the user service), then the body's digest; returns the key's
    /// owner and the access key.
    private func authenticate(_ request: inout Request) async throws -> (SignatureOwner, String) {
        let headers = Self.headers(of: request)
        // The digest header is signed, so the signature is checked before the body is read: no
        // unauthenticated caller makes the gateway hold a large body.
        let verification: SignatureVerification
        do {
            verification = try SignedRequestCheck.check(
                method: request.method.rawValue,
                path: request.uri.path,
                rawQuery: request.uri.query,
                headers: headers,
                now: Date(),
                policy: policy
            )
        } catch {
            throw refusal(error)
        }

        let user: SignatureOwner
        do {
            user = try await verifier.verify(verification)
        } catch let error as RPCError {
            let reason = error.metadata[stringValues: MetadataKey.errorReason].first(where: { _ in true })
            if let reason, let status = SignedRequestRejection.status(forServiceReason: reason) {
                throw APIError(HTTPResponse.Status(code: status), message: reason, application: userServiceName(error))
            }
            throw APIError(error)
        }

        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: maxBodyBytes)
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, code: APIError.gatewayValidationCode, message: "request body is larger than \(maxBodyBytes) bytes")
        }
        do {
            try SignedRequestCheck.verifyContentDigest(headers: headers, body: body.readableBytesView)
        } catch {
            throw refusal(error)
        }
        return (user, verification.accessKey)
    }

    private func refusal(_ rejection: SignedRequestRejection) -> APIError {
        logger.debug("signed request refused", metadata: ["reason": "\(rejection.description)"])
        return APIError(HTTPResponse.Status(code: rejection.status), message: rejection.message)
    }

    private func userServiceName(_ error: RPCError) -> String {
        error.metadata[stringValues: MetadataKey.errorApplication].first(where: { _ in true }) ?? gatewayApplication
    }

    /// Every header as received. HTTP/1.1's `Host` arrives as the request's authority, so it is
    /// put back under its name: signers always sign it.
    static func headers(of request: Request) -> [(name: String, value: String)] {
        var headers = request.headers.map { (name: $0.name.canonicalName, value: $0.value) }
        if let authority = request.head.authority, !headers.contains(where: { $0.name == "host" }) {
            headers.append((name: "host", value: authority))
        }
        return headers
    }
}
