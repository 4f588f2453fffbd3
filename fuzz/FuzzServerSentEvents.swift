import WireFormats

/// Events must not depend on where the network cut the stream: fed whole and fed in two
/// pieces (cut where the first byte says), the parser gives the same events.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzServerSentEvents(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let first = bytes.first else { return 0 }
    func events(_ pieces: [ArraySlice<UInt8>]) -> [ServerSentEvent]? {
        var parser = ServerSentEventParser(maxEventBytes: 4096)
        var events: [ServerSentEvent] = []
        for piece in pieces {
            guard let more = try? parser.feed(piece) else { return nil }
            events += more
        }
        if let last = parser.finish() { events.append(last) }
        return events
    }
    let cut = bytes.count > 1 ? 1 + Int(first) % (bytes.count - 1) : 1
    let whole = events([bytes[1...]])
    let split = events([bytes[1..<max(1, cut)], bytes[max(1, cut)...]])
    if let whole, let split, whole != split { fatalError("events depend on where the stream was cut") }
    return 0
}
