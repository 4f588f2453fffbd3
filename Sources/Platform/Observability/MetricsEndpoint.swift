import Hummingbird
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle

/// The Prometheus text exposition of a process's registry at `GET /metrics`, on a listener of
/// its own (`METRICS_HOST:METRICS_PORT`), never on the public API's port.
public struct MetricsEndpoint: Service {
    private let application: Application<RouterResponder<BasicRequestContext>>

    public init(
        registry: PrometheusCollectorRegistry, build: BuildInfo, listen: HostPort, beforeScrape: ScrapeHooks, logger: Logger,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) {
        let process = ProcessMetrics(registry: registry, build: build)
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            process.update()
            beforeScrape.run()
            var buffer: [UInt8] = []
            buffer.reserveCapacity(64 << 10)
            registry.emit(into: &buffer)
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: buffer))
            )
        }
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .notice)
        application = Application(
            router: router,
            configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: nil),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? listen.port
                logger.info("metrics served", metadata: ["url": "http://\(listen.host):\(port)/metrics"])
                await onRunning(port)
            },
            logger: quiet
        )
    }

    public func run() async throws {
        try await application.run()
    }
}
