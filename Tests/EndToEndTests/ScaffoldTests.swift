import Foundation
import Testing
import TestSupport

@testable import AISaaSCLI

/// `aisaas scaffold service`: what it writes and refuses. That the result builds and its tests
/// pass is proved on a scratch copy of the package by scripts/check-scaffold.sh (run by CI).
@Suite("scaffold")
struct ScaffoldTests {
    /// A package root with the two files the generator edits, as they are in this checkout.
    func packageRoot() throws -> TemporaryDirectory {
        let directory = try TemporaryDirectory()
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for path in ["Package.swift", "Sources/AISaaSCLI/AddedServices.swift"] {
            let target = URL(fileURLWithPath: directory.path).appendingPathComponent(path)
            try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: here.appendingPathComponent(path), to: target)
        }
        return directory
    }

    func read(_ directory: TemporaryDirectory, _ path: String) throws -> String {
        try String(contentsOfFile: directory.path + "/" + path, encoding: .utf8)
    }

    @Test("names: lower-case letters and digits, 2 to 30, not one the platform uses")
    func names() {
        for good in ["billing", "geo2", "ab"] { #expect(ServiceScaffold.problem(name: good) == nil, "\(good)") }
        for bad in ["", "a", "Billing", "2fa", "bill-ing", "bill_ing", "user", "ai", "gateway", "config", String(repeating: "a", count: 31), "bïlling"] {
            #expect(ServiceScaffold.problem(name: bad) != nil, "\(bad)")
        }
    }

    @Test("writes the service's files and lists it before the markers, which stay for the next one")
    func writesFiles() throws {
        let root = try packageRoot()
        defer { root.remove() }
        let scaffold = try ServiceScaffold(name: "billing", port: nil, root: URL(fileURLWithPath: root.path))
        #expect(scaffold.port == 9103 && scaffold.typePrefix == "Billing" && scaffold.application == "billing-service")
        let plan = try scaffold.plan()
        try plan.write()
        #expect(plan.created.contains("Sources/BillingService/Transport/BillingGRPCService.swift"))
        #expect(plan.edited == ["Package.swift", "Sources/AISaaSCLI/AddedServices.swift"])

        let proto = try read(root, "Protos/grpc/billing/v1/billing.proto")
        #expect(proto.contains("package grpc.billing.v1;") && proto.contains("service BillingService {"))
        let transport = try read(root, "Sources/BillingService/Transport/BillingGRPCService.swift")
        #expect(transport.contains("Grpc_Billing_V1_BillingService.SimpleServiceProtocol"))
        let wiring = try read(root, "Sources/AISaaSCLI/AddedServices/BillingService.swift")
        #expect(wiring.contains("static let defaultPort = 9103") && wiring.contains("BILLING_SERVICE_PORT"))
        for path in plan.created {
            let text = try read(root, path)
            #expect(!text.contains("__name__") && !text.contains("__Name__") && !text.contains("__NAME__") && !text.contains("__PORT__"), "\(path)")
        }

        let package = try read(root, "Package.swift")
        let dependency = try #require(package.range(of: "\"BillingService\",\n"))
        let marker = try #require(package.range(of: "// aisaas scaffold: service dependencies"))
        #expect(dependency.upperBound <= marker.lowerBound)
        #expect(package.contains("name: \"BillingService\"") && package.contains("name: \"BillingServiceTests\""))
        let list = try read(root, "Sources/AISaaSCLI/AddedServices.swift")
        #expect(list.contains("    BillingServiceEntry.self,\n    // aisaas scaffold: added services"))

        // A second service takes the next port and lands after the first.
        let second = try ServiceScaffold(name: "geo", port: nil, root: URL(fileURLWithPath: root.path))
        #expect(second.port == 9104)
        try second.plan().write()
        let both = try read(root, "Sources/AISaaSCLI/AddedServices.swift")
        #expect(both.contains("BillingServiceEntry.self,\n    GeoServiceEntry.self,\n    // aisaas scaffold: added services"))
    }

    @Test("an existing service or a lost marker is refused before anything is written")
    func refuses() throws {
        let root = try packageRoot()
        defer { root.remove() }
        try ServiceScaffold(name: "billing", port: 9200, root: URL(fileURLWithPath: root.path)).plan().write()
        let package = try read(root, "Package.swift")
        #expect(throws: ServiceScaffold.Refusal.self) { try ServiceScaffold(name: "billing", port: 9201, root: URL(fileURLWithPath: root.path)).plan() }
        #expect(try read(root, "Package.swift") == package)

        let markerless = package.replacingOccurrences(of: "// aisaas scaffold: service targets", with: "")
        try Data(markerless.utf8).write(to: URL(fileURLWithPath: root.path + "/Package.swift"))
        #expect(throws: ServiceScaffold.Refusal.self) { try ServiceScaffold(name: "geo", port: nil, root: URL(fileURLWithPath: root.path)).plan() }
        #expect(!FileManager.default.fileExists(atPath: root.path + "/Sources/GeoService"))
    }
}
