import AKSKSigning
import Foundation
import HTTPTypes
import NIOCore
import Testing

/// The cc-auth-v1 signed `/ai/invoke` routes through the gateway's router, against the services in
/// process and the fake provider.
@Suite("signed invoke routes", .serialized)
struct InvokeRoutesTests {
    private struct Device {
        let signer: Signer

        /// Signed for `localhost`, the host the router test's requests come for.
        func headers(_ method: String, _ path: String, body: String, nonce: String? = nil, date: Date = Date()) throws -> HTTPFields {
            let signed = try signer.sign(
                method: method, url: "http://localhost\(path)", body: Array(body.utf8), date: date, contentSHA256: true, nonce: nonce
            )
            var headers: HTTPFields = [.contentType: "application/json"]
            for header in signed.headersToAdd where header.name != "host" {
                headers[HTTPField.Name(header.name)!] = header.value
            }
            return headers
        }
    }

    private static func device(_ harness: GatewayHarness, _ username: String) async throws -> Device {
        let registered = try await harness.send(.post, "/user/register", json: #"{"username":"\#(username)","password":"password123"}"#)
        let accessKey = try #require(registered.data["accessKey"] as? String)
        let secretKey = try #require(registered.data["secretKey"] as? String)
        return Device(signer: Signer(accessKey: accessKey, secretKey: secretKey))
    }

    @Test("a signed chat completion answers in the envelope; what the signature does not cover is refused before the provider")
    func signedChatCompletion() async throws {
        try await GatewayHarness.with { harness in
            let device = try await Self.device(harness, "uma")
            let path = "/ai/invoke/chat_completion"
            let body = #"{"question":"What is a tide?"}"#
            let answer = try await harness.send(.post, path, body: body, headers: try device.headers("POST", path, body: body))
            #expect(answer.status == 200, "\(answer.text)")
            #expect(answer.json["code"] as? Int == 0)
            let sent = try #require(harness.provider.requests(to: .chat).last)
            #expect(String(decoding: sent.body, as: UTF8.self).contains("What is a tide?"))

            let calls = harness.provider.requests(to: .chat).count
            // The refusals of the protocol (docs: the cc-auth-v1 error table), none reaching the provider.
            let tampered = try await harness.send(.post, path, body: #"{"question":"Something else"}"#, headers: try device.headers("POST", path, body: body))
            #expect(tampered.status == 400 && tampered.message == "ContentDigestMismatch", "\(tampered.text)")
            let forged = Device(signer: Signer(accessKey: device.signer.accessKey, secretKey: "not-the-secret-key-0123456789"))
            let forgedAnswer = try await harness.send(.post, path, body: body, headers: try forged.headers("POST", path, body: body))
            #expect(forgedAnswer.status == 400 && forgedAnswer.message == "SignatureDoesNotMatch", "\(forgedAnswer.text)")
            let unsigned = try await harness.send(.post, path, json: body)
            #expect(unsigned.status == 400 && unsigned.message == "InvalidHTTPAuthHeader", "\(unsigned.text)")
            let unknownKey = Device(signer: Signer(accessKey: String(repeating: "A", count: 20), secretKey: "whatever-secret-0123456789"))
            let unknownAnswer = try await harness.send(.post, path, body: body, headers: try unknownKey.headers("POST", path, body: body))
            #expect(unknownAnswer.status == 403 && unknownAnswer.message == "InvalidAccessKeyId", "\(unknownAnswer.text)")
            // Signed an hour ago with the default five-minute expiration.
            let stale = try await harness.send(.post, path, body: body, headers: try device.headers("POST", path, body: body, date: Date().addingTimeInterval(-3600)))
            #expect(stale.status == 400 && stale.message == "RequestExpired", "\(stale.text)")
            #expect(harness.provider.requests(to: .chat).count == calls, "a refused call reached the provider")
        }
    }

    @Test("a nonce is taken once: the same signed request again is 409")
    func nonceReplay() async throws {
        try await GatewayHarness.with { harness in
            let device = try await Self.device(harness, "vic")
            let path = "/ai/invoke/chat_completion"
            let body = #"{"question":"once"}"#
            let headers = try device.headers("POST", path, body: body, nonce: Signer.makeNonce())
            #expect(try await harness.send(.post, path, body: body, headers: headers).status == 200)
            let replay = try await harness.send(.post, path, body: body, headers: headers)
            #expect(replay.status == 409 && replay.message == "NonceReused", "\(replay.text)")
            #expect(harness.provider.requests(to: .chat).count == 1)
        }
    }

    @Test("text to speech answers the provider's audio bytes; bad bodies get 422 naming the field")
    func textToSpeech() async throws {
        try await GatewayHarness.with { harness in
            let device = try await Self.device(harness, "wes")
            let path = "/ai/invoke/tts"
            let body = #"{"text":"Good morning"}"#
            let audio = try await harness.send(.post, path, body: body, headers: try device.headers("POST", path, body: body))
            #expect(audio.status == 200, "\(audio.text)")
            #expect(!audio.body.isEmpty)
            #expect(audio.headers[.contentType]?.hasPrefix("audio/") == true, "\(audio.headers)")

            let empty = #"{"text":""}"#
            let refused = try await harness.send(.post, path, body: empty, headers: try device.headers("POST", path, body: empty))
            #expect(refused.status == 422, "\(refused.text)")
            #expect(refused.metaProperties.contains("text"), "\(refused.text)")
        }
    }
}
