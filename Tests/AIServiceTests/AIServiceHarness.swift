import AIProviders
import AIService
import AISaaSProtos
import Foundation
import GRPCCore
import GRPCInProcessTransport
import Logging
import Platform
import TestSupport

/// One AI service instance served over the in-process transport.
struct AIServiceInstance: Sendable {
    let chat: Grpc_Ai_V1_AiChatModelService.Client<InProcessTransport.Client>
    let speech: Grpc_Ai_V1_AiSpeechService.Client<InProcessTransport.Client>
    let usage: Grpc_Ai_V1_AiUsageService.Client<InProcessTransport.Client>
}

/// Two AI service instances (replicas) on one fresh database, as production runs them.
struct AIServiceHarness: Sendable {
    let a: AIServiceInstance
    let b: AIServiceInstance
    let database: ServiceDatabase

    static func run<Result: Sendable>(
        _ kind: TestDatabaseKind,
        providers: AIProviderDirectory,
        transcoder: (any AudioTranscoding)? = ScriptedTranscoder(),
        configure: (inout AIServiceSettings) -> Void = { _ in },
        _ body: @Sendable (AIServiceHarness) async throws -> Result
    ) async throws -> Result {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let logger = Logger(label: "ai-service-test")
        let location = try await kind.makeLocation(in: directory)
        var settings = AIServiceSettings(listen: HostPort(host: "127.0.0.1", port: 0), database: location)
        configure(&settings)
        let first = try ServiceDatabase(location: location, migrations: AIMigrations.all, logger: logger)
        let second = try ServiceDatabase(location: location, migrations: AIMigrations.all, logger: logger)
        do {
            try await first.migrate()
            try await second.migrate()
            let result = try await serve(settings, first, providers, transcoder, logger) { a in
                try await serve(settings, second, providers, transcoder, logger) { b in
                    try await body(AIServiceHarness(a: a, b: b, database: first))
                }
            }
            await first.shutdown()
            await second.shutdown()
            return result
        } catch {
            await first.shutdown()
            await second.shutdown()
            throw error
        }
    }

    private static func serve<Result: Sendable>(
        _ settings: AIServiceSettings, _ database: ServiceDatabase, _ providers: AIProviderDirectory,
        _ transcoder: (any AudioTranscoding)?, _ logger: Logger,
        _ body: (AIServiceInstance) async throws -> Result
    ) async throws -> Result {
        let transport = InProcessTransport()
        return try await withGRPCServer(
            transport: transport.server,
            services: makeAIServices(settings: settings, database: database, providers: providers, transcoder: transcoder, logger: logger),
            interceptors: [RequestScopeServerInterceptor(application: aiServiceApplication, logger: logger)]
        ) { _ in
            let client = GRPCClient(transport: transport.client, interceptors: [RequestScopeClientInterceptor()])
            return try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    do {
                        try await client.runConnections()
                    } catch let error as RuntimeError where error.code == .clientIsStopped {
                        // A body that never called the service can end before the client ran.
                    }
                }
                do {
                    let result = try await body(AIServiceInstance(
                        chat: Grpc_Ai_V1_AiChatModelService.Client(wrapping: client),
                        speech: Grpc_Ai_V1_AiSpeechService.Client(wrapping: client),
                        usage: Grpc_Ai_V1_AiUsageService.Client(wrapping: client)
                    ))
                    client.beginGracefulShutdown()
                    try await group.waitForAll()
                    return result
                } catch {
                    client.beginGracefulShutdown()
                    throw error
                }
            }
        }
    }
}

/// Runs `body` as `userId` (role user unless `admin`), signed with access key `AK-<userId>`.
func asUser<Result: Sendable>(
    _ userId: String?, admin: Bool = false, accessKey: String? = nil, _ body: () async throws -> Result
) async throws -> Result {
    let scope = RequestScope(
        requestId: "req-" + RandomText.alphanumeric(8), userId: userId, role: admin ? .admin : .user,
        accessKey: accessKey ?? userId.map { "AK-\($0)" }
    )
    return try await RequestScope.$current.withValue(scope) { try await body() }
}

/// The gRPC error a call throws, or nil if it succeeds.
func rpcError(_ call: () async throws -> some Any) async -> RPCError? {
    do {
        _ = try await call()
        return nil
    } catch let error as RPCError {
        return error
    } catch {
        return RPCError(code: .unknown, message: "\(error)")
    }
}

extension RPCError {
    var reason: String? { metadata[stringValues: MetadataKey.errorReason].first(where: { _ in true }) }
    var retryAfter: Int? { metadata[stringValues: MetadataKey.errorRetryAfter].first(where: { _ in true }).flatMap { Int($0) } }
    var violatedProperties: [String] {
        guard let json = metadata[stringValues: MetadataKey.errorViolations].first(where: { _ in true }),
              let violations = try? JSONDecoder().decode([FieldViolation].self, from: Data(json.utf8)) else { return [] }
        return violations.map(\.property)
    }
}

/// Waits until `condition` holds, for work the service finishes after answering.
func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
    for _ in 0..<100 {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return false
}

extension AIServiceInstance {
    func usageReport(_ userId: String, admin: Bool = false, _ configure: (inout Grpc_Ai_V1_UsageQuery) -> Void = { _ in }) async throws -> Grpc_Ai_V1_UsageReport {
        var query = Grpc_Ai_V1_UsageQuery()
        configure(&query)
        let request = query
        return try await asUser(userId, admin: admin) { try await usage.getUsage(request) }
    }

    func createModel(_ userId: String, name: String, _ configure: (inout Grpc_Ai_V1_CreateChatModelRequest) -> Void = { _ in }) async throws -> Grpc_Ai_V1_ChatModel {
        var request = Grpc_Ai_V1_CreateChatModelRequest()
        request.name = name
        configure(&request)
        let sent = request
        return try await asUser(userId) { try await chat.createChatModel(sent) }
    }

    func ask(_ userId: String, _ question: String, chatModelId: String? = nil, messages: [(String, String)] = []) async throws -> Grpc_Ai_V1_CreateChatCompletionChoicesResponse {
        let request = Grpc_Ai_V1_CreateChatCompletionRequest.with {
            if let chatModelId { $0.chaModelID = chatModelId }
            $0.question = question
            $0.messages = messages.map { message in .with { $0.role = message.0; $0.content = message.1 } }
        }
        return try await asUser(userId) { try await chat.createChatCompletion(request) }
    }
}
