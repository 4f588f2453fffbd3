import Foundation
import Testing
@testable import AISaaSCLI

/// `aisaas sign`, run in-process against the worked example of aksk-v1.md.
@Suite("aisaas sign")
struct SignCommandTests {
    static let knownAnswer =
        "cc-auth-v1/Zx8Kq2LmN4pR6tV8wY0a/2026-01-02T03:04:05Z/300/content-type;host;x-cc-meta-data/95d4735429620d489d13b642212b3819579e72281db898f0b0c2fa034b6eff7e"
    static let exampleArguments = [
        "--method", "get", "--url", "/ai/chat/model/测试?text&text1=测试&text10=test",
        "--header", "Host: api.example.com", "--header", "Content-Type: application/json", "--header", "x-cc-meta-data:   a b  ",
        "--timestamp", "2026-01-02T03:04:05Z",
    ]

    @Test("prints the documented x-authorization, with keys from options or from the environment")
    func knownAnswer() throws {
        let withOptions = try SignCommand.parse(Self.exampleArguments + [
            "--access-key", "Zx8Kq2LmN4pR6tV8wY0a", "--secret-key", "h7Gf3Dk9Lq2Wm5Np8Rt1Vx4Zb6Cj0Ey3Ua7Io9Pq",
        ])
        let output = try withOptions.render(signer: withOptions.keys.signer(environment: [:]), now: Date())
        #expect(output.output == Self.knownAnswer)
        #expect(output.hint == nil)

        let fromEnvironment = try SignCommand.parse(Self.exampleArguments)
        let environment = ["AISAAS_ACCESS_KEY": "Zx8Kq2LmN4pR6tV8wY0a", "AISAAS_SECRET_KEY": "h7Gf3Dk9Lq2Wm5Np8Rt1Vx4Zb6Cj0Ey3Ua7Io9Pq"]
        #expect(try fromEnvironment.render(signer: fromEnvironment.keys.signer(environment: environment), now: Date()).output == Self.knownAnswer)
        #expect(throws: (any Error).self) { try fromEnvironment.keys.signer(environment: [:]) }
    }

    @Test("--content-sha256 and --nonce add signed headers; --print-headers lists them all")
    func extras() throws {
        let command = try SignCommand.parse([
            "--method", "POST", "--url", "http://127.0.0.1:9000/ai/invoke/tts", "--data", "{\"text\":\"hi\"}",
            "--content-sha256", "--nonce", "--print-headers", "--access-key", "Zx8Kq2LmN4pR6tV8wY0a", "--secret-key", "s",
        ])
        let lines = try command.render(signer: command.keys.signer(environment: [:]), now: Date()).output.split(separator: "\n")
        #expect(lines.map { $0.prefix { $0 != ":" } } == ["x-authorization", "host", "x-cc-content-sha256", "x-cc-nonce"])
        #expect(lines[0].contains("/host;x-cc-content-sha256;x-cc-nonce/"))
        #expect(lines[1] == "host: 127.0.0.1:9000")
        // sha256 of {"text":"hi"}
        #expect(lines[2] == "x-cc-content-sha256: e7b995efa755c5ff3b84d2188b58cb4ae916a59470eb3761df8a814f11763500")

        let plain = try SignCommand.parse(["--url", "http://h/x", "--nonce", "--access-key", "Zx8Kq2LmN4pR6tV8wY0a", "--secret-key", "s"])
        let rendered = try plain.render(signer: plain.keys.signer(environment: [:]), now: Date())
        #expect(rendered.output.hasPrefix("cc-auth-v1/Zx8Kq2LmN4pR6tV8wY0a/"))
        #expect(rendered.hint?.contains("x-cc-nonce: ") == true)
    }

    @Test("bad input is refused: no host, a header without ':', a bad timestamp or expiration")
    func badInput() throws {
        let noHost = try SignCommand.parse(["--url", "/x", "--access-key", "a", "--secret-key", "s"])
        #expect(throws: (any Error).self) { try noHost.render(signer: noHost.keys.signer(environment: [:]), now: Date()) }
        let badHeader = try SignCommand.parse(["--url", "http://h/x", "--header", "no-colon", "--access-key", "a", "--secret-key", "s"])
        #expect(throws: (any Error).self) { try badHeader.render(signer: badHeader.keys.signer(environment: [:]), now: Date()) }
        #expect(throws: (any Error).self) { try SignCommand.parse(["--url", "http://h/x", "--timestamp", "yesterday"]) }
        #expect(throws: (any Error).self) { try SignCommand.parse(["--url", "http://h/x", "--expiration", "0"]) }
        // What the gateway would refuse anyway: longer than 7 days, a method with a space, a header across lines.
        #expect(throws: (any Error).self) { try SignCommand.parse(["--url", "http://h/x", "--expiration", "604801"]) }
        #expect(throws: (any Error).self) { try SignCommand.parse(["--url", "http://h/x", "--method", "G E T"]) }
        #expect(throws: (any Error).self) { try SignCommand.parse(["--url", "http://h/x", "--header", "x-a: 1\nx-b: 2"]) }
        #expect(throws: Never.self) { try SignCommand.parse(["--url", "http://h/x", "--method", "post", "--expiration", "604800"]) }
    }
}
