import Foundation
import Testing
@testable import AKSKSigning

/// Generated signatures, paths, queries and headers: the checks that run before any secret is
/// involved must answer every input with a documented rejection or a verification, never trap,
/// and a verification must carry what the request said.
@Suite("signed request checks, generated inputs")
struct SignedRequestFuzzTests {
    private struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func int(_ range: Range<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
        mutating func pick<T>(_ items: [T]) -> T { items[int(0..<items.count)] }
        mutating func text(_ alphabet: [Character], _ length: Range<Int>) -> String {
            String((0..<int(length)).map { _ in pick(alphabet) })
        }
    }

    static let documented: Set<String> = [
        "InvalidHTTPAuthHeader", "InvalidVersion", "InvalidAccessKeyId", "InvalidTimestamp", "RequestExpired",
        "SignatureDoesNotMatch", "ContentDigestMismatch", "InvalidNonce",
    ]

    @Test("every generated request is refused with a documented error or verified", arguments: [UInt64(7), 8, 9, 0xFEED])
    func generated(seed: UInt64) {
        var random = Random(state: seed)
        let alphabet = Array("cC-auth-v1/Zx8Kq2LmN4pR6tV8wY0a2026-01-02T03:04:05.123Z300;host%é测\u{0}\n +=&?#\\")
        let valid = SignedRequestCheckTests.authorization.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        for _ in 0..<3000 {
            var parts = valid
            for _ in 0..<random.int(1..<4) {
                let index = random.int(0..<parts.count)
                switch random.int(0..<3) {
                case 0: parts[index] = random.text(alphabet, 0..<12)
                case 1: parts[index] += random.text(alphabet, 1..<4)
                default: parts.insert(random.text(alphabet, 0..<6), at: index)
                }
            }
            let authorization = parts.joined(separator: "/")
            let path = random.pick([SignedRequestCheckTests.path, "/" + random.text(alphabet, 0..<20), "", "%", "%zz/%E6"])
            let query = random.pick([SignedRequestCheckTests.query, random.text(alphabet, 0..<30), nil, "x-authorization=%", "&&=&"])
            var headers = SignedRequestCheckTests.headers
            if random.int(0..<3) == 0 { headers.append(("x-cc-nonce", random.text(alphabet, 0..<70))) }
            if random.int(0..<3) == 0 { headers.append(("x-cc-content-sha256", random.text(alphabet, 0..<70))) }
            headers.append(("x-authorization", authorization))
            do {
                let verified = try SignedRequestCheck.check(
                    method: "GET", path: path, rawQuery: query, headers: headers,
                    now: SignedRequestCheckTests.signedAt.addingTimeInterval(10), policy: SignaturePolicy()
                )
                try SignedRequestCheck.verifyContentDigest(headers: headers, body: [])
                #expect(authorization.hasPrefix(verified.authStringPrefix))
                #expect(verified.canonicalRequest.hasPrefix("GET\n"))
            } catch {
                #expect(Self.documented.contains(error.message), "\(error)")
                #expect([400, 403, 404].contains(error.status))
            }
        }
    }

    @Test("timestamps, expirations and percent-decoding never trap", arguments: [UInt64(1), 2])
    func primitives(seed: UInt64) {
        var random = Random(state: seed)
        let digits = Array("0123456789-:TZ.+ e")
        for _ in 0..<5000 {
            let stamp = random.pick(["2026-01-02T03:04:05Z", "9999-12-31T23:59:59.999Z", "0000-00-00T00:00:00Z"]).map { character in
                random.int(0..<6) == 0 ? random.pick(digits) : character
            }
            if let date = CCAuthTimestamp.parse(String(stamp)) { #expect(date.timeIntervalSince1970.isFinite) }
            _ = CCAuthV1.expirationSeconds(random.text(digits, 0..<25))
            let encoded = random.text(Array("%0123456789ABCDEFabcdefgz+ é"), 0..<20)
            _ = CCAuthV1.percentDecode(encoded[...], plusAsSpace: random.int(0..<2) == 0)
        }
    }
}
