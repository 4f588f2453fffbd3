import Foundation
import Testing
import TestSupport

/// What the gateway's HTTP layer does with clients that misbehave below the level of routes:
/// broken framing, oversized or invalid headers, silence, slowness, too many connections.
@Suite("the HTTP layer", .serialized)
struct HTTPLayerTests {
    /// The status line and the JSON error body of a raw answer.
    private struct RawAnswer {
        let status: Int
        let headers: [String: String]
        let json: [String: Any]

        init?(_ text: String) {
            guard let split = text.range(of: "\r\n\r\n") else { return nil }
            let lines = text[..<split.lowerBound].split(separator: "\r\n")
            guard let statusLine = lines.first, let code = Int(statusLine.split(separator: " ").dropFirst().first ?? "") else { return nil }
            status = code
            var headers: [String: String] = [:]
            for line in lines.dropFirst() {
                let pair = line.split(separator: ":", maxSplits: 1)
                if pair.count == 2 { headers[pair[0].lowercased()] = pair[1].trimmingCharacters(in: .whitespaces) }
            }
            self.headers = headers
            let body = Data(text[split.upperBound...].utf8)
            json = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:]
        }

        /// The contract's error body with the security headers, the status matching.
        func expectErrorBody(_ expected: Int, _ comment: Comment) {
            #expect(status == expected, comment)
            #expect(json["statusCode"] as? Int == expected, comment)
            #expect(!((json["message"] as? String) ?? "").isEmpty, comment)
            #expect(json["application"] as? String == "gateway", comment)
            #expect(json["requestId"] as? String == headers["x-request-id"] && headers["x-request-id"] != nil, comment)
            #expect(headers["x-content-type-options"] == "nosniff" && headers["x-frame-options"] == "DENY", comment)
            #expect(headers["content-type"]?.hasPrefix("application/json") == true, comment)
        }
    }

    /// The last bytes of a `/health` answer (keys are written in order).
    static let endOfHealth = "\"statusCode\":200}"

    @Test("requests the HTTP parser refuses get the error body and the security headers, and nothing else breaks")
    func parserErrors() async throws {
        try await PlatformUnderTest.with(.sqlite) { platform in
            let cases: [(String, Int, String)] = [
                ("POST /user/register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n", 400, "bad chunk size"),
                ("GARBAGE\r\n\r\n", 400, "bad request line"),
                ("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "a", count: 70_000) + "\r\n\r\n", 431, "oversized header"),
                ("POST /user/register HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "CL and TE"),
                ("GET /health HTTP/1.1\r\nHost: x\r\nX-Nul: a\u{0}b\r\n\r\n", 400, "NUL in a header"),
                ("GET /health HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n", 400, "space in a header name"),
            ]
            for (request, status, comment) in cases {
                let connection = try await RawConnection.open(port: platform.port)
                try await connection.send(request)
                let text = await connection.readUntilClosed(timeout: .seconds(10))
                await connection.close()
                let answer = try #require(text.flatMap(RawAnswer.init), "\(comment): \(text ?? "still open")")
                answer.expectErrorBody(status, "\(comment)")
                // Exactly one answer, then the connection closes.
                #expect(text?.components(separatedBy: "HTTP/1.1 ").count == 2, "\(comment): \(text ?? "")")
            }
            // A route that never reads its body has answered before the framing breaks: that answer
            // stands alone, no second one follows, and the connection closes.
            let unread = try await RawConnection.open(port: platform.port)
            try await unread.send("GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nnot-a-size\r\n")
            let unreadText = await unread.readUntilClosed(timeout: .seconds(10)) ?? "still open"
            #expect(unreadText.hasPrefix("HTTP/1.1 200") && unreadText.components(separatedBy: "HTTP/1.1 ").count == 2, "\(unreadText)")
            #expect(try await platform.request(.GET, "/health").status == 200)

            // HTTP/1.0 ends the connection with the answer, unless the client asks to keep it.
            let old = try await RawConnection.open(port: platform.port)
            try await old.send("GET /health HTTP/1.0\r\n\r\n")
            let oldText = await old.readUntilClosed(timeout: .seconds(10)) ?? "still open"
            await old.close()
            #expect(oldText.contains(Self.endOfHealth), "\(oldText)")
            let kept = try await RawConnection.open(port: platform.port)
            try await kept.send("GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            let first = await kept.read(until: Self.endOfHealth, timeout: .seconds(10))
            try await kept.send("GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            let both = await kept.read(until: Self.endOfHealth, occurrences: 2, timeout: .seconds(10))
            #expect(first.contains(Self.endOfHealth) && both.components(separatedBy: Self.endOfHealth).count == 3, "\(both)")
            await kept.close()

            // HEAD, as load balancers ask: the GET's status and headers, no body, and the next
            // request on the connection is answered as usual.
            let head = try await RawConnection.open(port: platform.port)
            try await head.send("HEAD /health HTTP/1.1\r\nHost: x\r\n\r\nHEAD /ready HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let heads = await head.readUntilClosed(timeout: .seconds(10)) ?? "still open"
            await head.close()
            let answers = heads.components(separatedBy: "HTTP/1.1 ").dropFirst()
            #expect(answers.count == 3 && answers.allSatisfy { $0.hasPrefix("200 ") }, "\(heads)")
            #expect(answers.dropLast().allSatisfy { $0.hasSuffix("\r\n\r\n") && $0.lowercased().contains("content-length: ") }, "a HEAD answer had a body: \(heads)")
            #expect(heads.hasSuffix(Self.endOfHealth), "\(heads)")
        }
    }

    @Test("silent, half-sent and stalled clients are dropped; keep-alive and long streams still work")
    func timeouts() async throws {
        let provider = try await FakeProvider.start()
        provider.setStreaming(FakeProvider.Streaming(chunks: 3, interval: .milliseconds(1500)))
        let settings = [
            "HTTP_HEADER_TIMEOUT_SECONDS": "1", "HTTP_IDLE_TIMEOUT_SECONDS": "2", "HTTP_READ_TIMEOUT_SECONDS": "1",
            "AI_PROVIDERS": "openai", "AI_PROVIDER_OPENAI_BASE_URL": provider.baseURL,
        ]
        try await PlatformUnderTest.with(.sqlite, settings: settings) { platform in
            // The cases run side by side: each waits out a timeout.
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    // Nothing sent: closed after the idle timeout, without an answer.
                    let silent = try await RawConnection.open(port: platform.port)
                    #expect(await silent.readUntilClosed(timeout: .seconds(10)) == "")
                }
                group.addTask {
                    // Half a request line: 408 after the header timeout.
                    let half = try await RawConnection.open(port: platform.port)
                    try await half.send("GET /hea")
                    let answer = await half.readUntilClosed(timeout: .seconds(10))
                    try #require(answer.flatMap(RawAnswer.init), "\(answer ?? "still open")").expectErrorBody(408, "half a request line")
                }
                group.addTask {
                    // A trickle of header bytes does not keep a connection: the header timeout counts from the first byte.
                    let trickle = try await RawConnection.open(port: platform.port)
                    let trickled = Task {
                        for piece in ["GET /health HTTP/1.1\r\n", "Host: x\r\n", "X-A: 1\r\n", "X-B: 2\r\n", "X-C: 3\r\n"] {
                            try? await trickle.send(piece)
                            try? await Task.sleep(for: .milliseconds(400))
                        }
                    }
                    let answer = await trickle.readUntilClosed(timeout: .seconds(10))
                    trickled.cancel()
                    try #require(answer.flatMap(RawAnswer.init), "\(answer ?? "still open")").expectErrorBody(408, "trickled headers")
                }
                group.addTask {
                    // A body that stops arriving: 408 after the read timeout.
                    let stalled = try await RawConnection.open(port: platform.port)
                    try await stalled.send("POST /user/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user")
                    let answer = await stalled.readUntilClosed(timeout: .seconds(10))
                    try #require(answer.flatMap(RawAnswer.init), "\(answer ?? "still open")").expectErrorBody(408, "stalled body")
                }
                group.addTask {
                    // Keep-alive: a second request on the same connection, a second after the first.
                    let kept = try await RawConnection.open(port: platform.port)
                    try await kept.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                    #expect(await kept.read(until: Self.endOfHealth, timeout: .seconds(5)).hasPrefix("HTTP/1.1 200"))
                    try await Task.sleep(for: .seconds(1))
                    try await kept.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                    let both = await kept.read(until: Self.endOfHealth, occurrences: 2, timeout: .seconds(5))
                    #expect(both.components(separatedBy: "HTTP/1.1 200").count == 3, "\(both)")
                    #expect(!kept.isClosedByServer)
                    // Idle after its requests, it is closed once the idle timeout has passed.
                    #expect(await kept.readUntilClosed(timeout: .seconds(10)) == both, "closed, with nothing after the two answers")
                }
                group.addTask {
                    // A stream whose events are further apart than every timeout runs to its end.
                    let registered = try await platform.register("streamer")
                    let device = SignedClient(
                        port: platform.port, accessKey: try #require(registered.data["accessKey"] as? String),
                        secretKey: try #require(registered.data["secretKey"] as? String)
                    )
                    let stream = try await device.stream("/ai/invoke/chat_completion", #"{"question": "tell me a long story", "stream": true}"#)
                    #expect(stream.status == 200)
                    #expect(stream.events.last == "data: [DONE]", "\(stream.events)")
                }
                try await group.waitForAll()
            }
        }
        await provider.stop()
    }

    @Test("beyond HTTP_MAX_CONNECTIONS a new connection waits until one closes")
    func connectionCap() async throws {
        try await PlatformUnderTest.with(.sqlite, settings: ["HTTP_MAX_CONNECTIONS": "2", "HTTP_IDLE_TIMEOUT_SECONDS": "60"]) { platform in
            let first = try await RawConnection.open(port: platform.port)
            let second = try await RawConnection.open(port: platform.port)
            for connection in [first, second] {
                try await connection.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(await connection.read(until: Self.endOfHealth, timeout: .seconds(5)).hasPrefix("HTTP/1.1 200"))
            }
            let third = try await RawConnection.open(port: platform.port)
            try await third.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await third.read(until: "HTTP/1.1", timeout: .milliseconds(700)) == "")
            await first.close()
            #expect(await third.read(until: Self.endOfHealth, timeout: .seconds(5)).hasPrefix("HTTP/1.1 200"))
            await second.close()
            await third.close()
        }
    }
}
