import ArgumentParser
import Foundation

/// `aisaas scaffold service NAME`: a new gRPC service, built the way this codebase builds one.
struct ScaffoldCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scaffold",
        abstract: "Generate code for the platform.",
        subcommands: [ScaffoldServiceCommand.self]
    )
}

struct ScaffoldServiceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service",
        abstract: "Add a gRPC service: its .proto and generated code, a target with Transport, Domain and Data, a test suite, and its wiring.",
        discussion: """
            Writes Protos/grpc/NAME/v1/NAME.proto and the code generated from it (scripts/generate-protos.sh), \
            Sources/<Name>Service (a builder, migrations for SQLite and PostgreSQL, a repository, the domain rules \
            and the gRPC handler, served with health and registered in discovery), the gateway's routes \
            (/NAME/items, behind JWT authentication), the `aisaas NAME-service` subcommand, its place in \
            `aisaas all` and `aisaas migrate`, and Tests/<Name>ServiceTests. Nothing is overwritten: the command \
            stops before writing if any of its files exists. Then `swift build` and `swift test --filter <Name>ServiceTests`.
            """
    )

    @Argument(help: "The service's name: 2 to 30 lower-case letters and digits, starting with a letter (e.g. billing).")
    var name: String

    @Option(help: "The port `aisaas NAME-service` listens on by default (1024-65535; default: the first one after the services already there).")
    var port: Int?

    @Option(help: "The package's root folder.")
    var root: String = "."

    @Flag(help: "Do not run scripts/generate-protos.sh (run it yourself before building).")
    var skipGenerate = false

    func validate() throws {
        if let problem = ServiceScaffold.problem(name: name) { throw ValidationError(problem) }
        if let port, !(1024...65535).contains(port) { throw ValidationError("--port must be 1024 to 65535") }
    }

    func run() throws {
        let scaffold = try ServiceScaffold(name: name, port: port, root: URL(fileURLWithPath: root))
        let plan: ServiceScaffold.Plan
        do {
            plan = try scaffold.plan()
        } catch let error as ServiceScaffold.Refusal {
            throw ValidationError(error.message)
        }
        try plan.write()
        for path in plan.created { print("created  \(path)") }
        for path in plan.edited { print("edited   \(path)") }
        if skipGenerate {
            print("next: scripts/generate-protos.sh, then swift build")
        } else {
            let status = try scaffold.generateProtos()
            guard status == 0 else {
                FileHandle.standardError.write(Data("scripts/generate-protos.sh failed (exit \(status)); run it again once fixed\n".utf8))
                throw ExitCode(status)
            }
        }
        print("""
            \(scaffold.application) on port \(scaffold.port): `aisaas \(scaffold.application)` runs it alone; `aisaas all` and the gateway \
            include it (\(scaffold.settingsPrefix)_SERVICE_ADDRS, or DISCOVERY=etcd). Test it with `swift test --filter \(scaffold.typePrefix)ServiceTests`.
            """)
    }
}

/// The files and edits of one new service; nothing is written until every check passed.
struct ServiceScaffold {
    struct Refusal: Error {
        let message: String
    }

    let name: String
    let typePrefix: String
    let settingsPrefix: String
    let port: Int
    let root: URL
    var application: String { name + "-service" }

    /// Names the platform already uses for something else.
    static let reserved: Set<String> = [
        "user", "users", "ai", "gateway", "platform", "all", "migrate", "seed", "sign", "invoke", "registry", "config", "probe",
        "scaffold", "health", "auth", "api", "v1", "grpc", "openapi", "metrics", "test", "tests",
    ]

    static func problem(name: String) -> String? {
        let characters = Array(name.unicodeScalars)
        guard (2...30).contains(characters.count),
              let first = characters.first, ("a"..."z").contains(first),
              characters.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) })
        else { return "the name must be 2 to 30 lower-case letters and digits, starting with a letter, not '\(name)'" }
        if reserved.contains(name) { return "'\(name)' is taken by the platform; choose another name" }
        return nil
    }

    init(name: String, port: Int?, root: URL) throws {
        self.name = name
        typePrefix = name.prefix(1).uppercased() + name.dropFirst()
        settingsPrefix = name.uppercased()
        self.root = root
        self.port = try port ?? Self.nextFreePort(root: root)
    }

    /// One after the highest default port of the services there (9101 user, 9102 AI, then added ones).
    static func nextFreePort(root: URL) throws -> Int {
        let folder = root.appendingPathComponent("Sources/AISaaSCLI/AddedServices")
        let files = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        var highest = 9102
        for file in files where file.hasSuffix(".swift") {
            let text = (try? String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") where line.contains("static let defaultPort = ") {
                if let value = Int(line.split(separator: "=").last?.trimmingCharacters(in: .whitespaces) ?? "") { highest = max(highest, value) }
            }
        }
        return highest + 1
    }

    struct Plan {
        var files: [(path: String, contents: String)] = []
        var edits: [(path: String, contents: String)] = []
        let root: URL
        var created: [String] { files.map(\.path) }
        var edited: [String] { edits.map(\.path) }

        func write() throws {
            for file in files {
                let url = root.appendingPathComponent(file.path)
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try Data(file.contents.utf8).write(to: url, options: .withoutOverwriting)
            }
            for edit in edits { try Data(edit.contents.utf8).write(to: root.appendingPathComponent(edit.path), options: .atomic) }
        }
    }

    func plan() throws -> Plan {
        var plan = Plan(root: root)
        let service = "Sources/\(typePrefix)Service"
        let templates: [(String, String)] = [
            ("Protos/grpc/\(name)/v1/\(name).proto", ServiceTemplates.proto),
            ("\(service)/\(typePrefix)ServiceBuilder.swift", ServiceTemplates.builder),
            ("\(service)/Domain/\(typePrefix)Catalog.swift", ServiceTemplates.domain),
            ("\(service)/Data/\(typePrefix)Migrations.swift", ServiceTemplates.migrations),
            ("\(service)/Data/SQL\(typePrefix)ItemRepository.swift", ServiceTemplates.repository),
            ("\(service)/Transport/\(typePrefix)GRPCService.swift", ServiceTemplates.transport),
            ("Sources/Gateway/Routes/Added/\(typePrefix)Routes.swift", ServiceTemplates.gatewayRoutes),
            ("Sources/AISaaSCLI/AddedServices/\(typePrefix)Service.swift", ServiceTemplates.cliWiring),
            ("Tests/\(typePrefix)ServiceTests/\(typePrefix)ServiceTests.swift", ServiceTemplates.tests),
        ]
        for (path, template) in templates {
            guard !FileManager.default.fileExists(atPath: root.appendingPathComponent(path).path) else {
                throw Refusal(message: "\(path) exists already: is there a '\(name)' service?")
            }
            plan.files.append((path, fill(template)))
        }
        for folder in [service, "Tests/\(typePrefix)ServiceTests"] where FileManager.default.fileExists(atPath: root.appendingPathComponent(folder).path) {
            throw Refusal(message: "\(folder) exists already: is there a '\(name)' service?")
        }
        plan.edits.append(("Package.swift", try insert(
            into: "Package.swift",
            [("// aisaas scaffold: service dependencies", "\"\(typePrefix)Service\",\n"), ("// aisaas scaffold: service targets", fill(Self.targets))]
        )))
        plan.edits.append(("Sources/AISaaSCLI/AddedServices.swift", try insert(
            into: "Sources/AISaaSCLI/AddedServices.swift", [("// aisaas scaffold: added services", "\(typePrefix)ServiceEntry.self,\n")]
        )))
        return plan
    }

    /// Runs `scripts/generate-protos.sh` in the package's root and answers its exit status.
    func generateProtos() throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["bash", "scripts/generate-protos.sh"]
        process.currentDirectoryURL = root
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    func fill(_ template: String) -> String {
        template
            .replacingOccurrences(of: "__Name__", with: typePrefix)
            .replacingOccurrences(of: "__name__", with: name)
            .replacingOccurrences(of: "__NAME__", with: settingsPrefix)
            .replacingOccurrences(of: "__PORT__", with: String(port))
    }

    /// `path`'s text with each addition placed before its marker line, indented like it.
    private func insert(into path: String, _ additions: [(marker: String, text: String)]) throws -> String {
        let url = root.appendingPathComponent(path)
        guard var text = try? String(contentsOf: url, encoding: .utf8) else {
            throw Refusal(message: "\(path) is missing: run this in the package's root (or give --root)")
        }
        for (marker, addition) in additions {
            guard let range = text.range(of: marker) else { throw Refusal(message: "\(path) has lost its '\(marker)' line") }
            let lineStart = text[..<range.lowerBound].lastIndex(of: "\n").map { text.index(after: $0) } ?? text.startIndex
            let indent = String(text[lineStart..<range.lowerBound])
            let lines = addition.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
            let indented = lines.map { $0.isEmpty ? "" : indent + $0 }.joined(separator: "\n") + "\n"
            text.insert(contentsOf: indented, at: lineStart)
        }
        return text
    }

    static let targets = """
        // The __name__ service (generated by `aisaas scaffold service __name__`).
        .target(
            name: "__Name__Service",
            dependencies: [
                "Platform", "AISaaSProtos",
                .product(name: "FluentKit", package: "fluent-kit"),
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "__Name__ServiceTests",
            dependencies: [
                "__Name__Service", "AISaaSCLI", "Platform", "AISaaSProtos", "TestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        """
}
