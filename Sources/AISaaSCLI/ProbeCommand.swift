import ArgumentParser
import AsyncHTTPClient
import Foundation
import Platform

/// `aisaas probe`: a health check for container runtimes (`HEALTHCHECK`, exec probes), exiting 0
/// when the target serves and 1 otherwise.
public struct ProbeCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "probe",
        abstract: "Checks a process's health: HTTP (the gateway's /health answers 200) or gRPC (grpc.health.v1 says SERVING); exits 0 or 1.",
        discussion: """
            aisaas probe http://127.0.0.1:9000/health
            aisaas probe --grpc 127.0.0.1:9101
            """
    )

    @Argument(help: "An http:// URL that must answer 200.")
    var url: String?

    @Option(help: "A host:port whose gRPC health must be SERVING.")
    var grpc: String?

    @Option(help: "Seconds to wait for an answer.")
    var timeout: Int = 3

    public init() {}

    public func validate() throws {
        guard (url == nil) != (grpc == nil) else { throw ValidationError("give either a URL or --grpc host:port") }
        if let url, !(url.hasPrefix("http://") || url.hasPrefix("https://")) { throw ValidationError("the URL must start with http:// or https://") }
    }

    public func run() async throws {
        if let grpc {
            let status = await HealthProbe.status(of: grpc, service: "", timeout: .seconds(timeout))
            print(status)
            if status != "SERVING" { throw ExitCode(1) }
            return
        }
        guard let url else { throw ExitCode(1) }
        do {
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(Int64(timeout)))
            _ = try await response.body.collect(upTo: 1 << 20)
            print(response.status.code)
            if response.status.code != 200 { throw ExitCode(1) }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            print("\(error)")
            throw ExitCode(1)
        }
    }
}
