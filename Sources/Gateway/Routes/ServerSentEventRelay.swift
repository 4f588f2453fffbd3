import Hummingbird
import HTTPTypes
import NIOCore
import Platform

/// A streamed answer: the chunks of a call that runs beside the handler, written as Server-Sent
/// Events as they arrive, ending with `data: [DONE]`.
///
/// The response waits until the call has opened (the service's first event): an error before that
/// is an ordinary answer with its status and error body; a later one is the stream's last event.
/// A client that goes away cancels the call, and with it the provider's request, at once; a
/// keep-alive comment every `keepAliveInterval` while the provider is silent keeps proxies from
/// closing the stream. The connection stays open for the client's next request.
enum ServerSentEventRelay {
    /// Proxies close idle connections after about a minute; a comment line keeps the stream open.
    static let keepAliveInterval: Duration = .seconds(10)

    /// What the call hands the relay.
    struct Feed<Opening: Sendable, Chunk: Sendable>: Sendable {
        fileprivate let opening: AsyncPipe<Opening>
        fileprivate let events: AsyncPipe<Event<Chunk>>

        /// The call has opened; the answer's headers may depend on `value`.
        func open(_ value: Opening) {
            opening.yield(value)
            opening.finish()
        }

        func send(_ chunk: Chunk) {
            events.yield(.chunk(chunk))
        }
    }

    fileprivate enum Event<Chunk: Sendable>: Sendable {
        case chunk(Chunk)
        case keepAlive
    }

    /// - `call`: runs the call, opening the feed once and sending its chunks; returning ends the
    ///   stream, throwing ends it with an error.
    /// - `headers`: headers to add to the `200` for what the call opened with.
    /// - `encode`: a chunk as its event bytes (`data: …\n\n`); `errorEvent`: an error as the last event.
    static func respond<Opening: Sendable, Chunk: Sendable>(
        context: GatewayRequestContext,
        call: @escaping @Sendable (Feed<Opening, Chunk>) async throws -> Void,
        headers addHeaders: (Opening) -> HTTPFields = { _ in [:] },
        encode: @escaping @Sendable (Chunk) throws -> ByteBuffer,
        errorEvent: @escaping @Sendable (any Error) -> ByteBuffer
    ) async throws -> Response {
        let events = AsyncPipe<Event<Chunk>>(readerCancellation: .ends)
        let opening = AsyncPipe<Opening>(readerCancellation: .ends)
        // Unstructured on purpose: the call outlives this handler and feeds the response body.
        let relay = Task.onCurrentLoop {
            do {
                try await call(Feed(opening: opening, events: events))
                opening.finish()
                events.finish()
            } catch {
                opening.finish(throwing: error)
                events.finish(throwing: error)
            }
        }
        let departure = await context.watchDeparture { relay.cancel() }
        let opened: Opening??
        do {
            opened = try await withTaskCancellationHandler {
                try await opening.next()
            } onCancel: {
                relay.cancel()
            }
        } catch {
            // Gone before the call opened: 499, whatever the call failed with.
            throw departure.outcome(of: error, logger: context.logger)
        }

        // A timer of the connection's event loop, not a sleeping task: Swift's sleeps go through
        // Dispatch's timer thread, a thread hand-off for every stream.
        let keepAlive = context.channel.eventLoop.scheduleRepeatedTask(initialDelay: TimeAmount(Self.keepAliveInterval), delay: TimeAmount(Self.keepAliveInterval)) { task in
            // Ends with the stream, even if no body writer ever runs.
            if !events.yield(.keepAlive) { task.cancel() }
        }
        var headers: HTTPFields = [.contentType: "text/event-stream; charset=utf-8", .cacheControl: "no-cache"]
        headers[HTTPField.Name("X-Accel-Buffering")!] = "no"
        if let value = opened ?? nil { headers.append(contentsOf: addHeaders(value)) }
        let body = Hummingbird.ResponseBody { writer in
            defer {
                relay.cancel()
                keepAlive.cancel()
            }
            // The head goes out now, as soon as the call is open, not with the first chunk: an empty
            // write frames no chunk (which would end the body) and flushes what was written.
            try await writer.write(ByteBuffer())
            while true {
                let event: Event<Chunk>?
                do {
                    event = try await events.next()
                } catch {
                    try await writer.write(errorEvent(error))
                    break
                }
                switch event {
                case .chunk(let chunk)?: try await writer.write(try encode(chunk))
                case .keepAlive?: try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                case nil:
                    try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                    try await writer.finish(nil)
                    return
                }
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }
}
