import ServiceLifecycle

/// Runs `action` once the process begins to shut down. Placed before the services that use a
/// resource in a `ServiceGroup`, it runs after they have stopped (groups stop in reverse order).
public struct ShutdownHook: Service {
    private let action: @Sendable () async -> Void

    public init(_ action: @escaping @Sendable () async -> Void) {
        self.action = action
    }

    public func run() async throws {
        try? await gracefulShutdown()
        await action()
    }
}
