import WireFormats

/// The first line of the input is the boundary, the rest the body: parts must lie in the body.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMultipart(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    guard let newline = bytes.firstIndex(of: 0x0A) else { return 0 }
    let boundary = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[..<newline]), as: UTF8.self)
    let body = UnsafeRawBufferPointer(rebasing: bytes[(newline + 1)...])
    guard let parts = try? MultipartFormParser().parse(body, boundary: boundary) else { return 0 }
    for part in parts where part.content.lowerBound < 0 || part.content.upperBound > body.count || part.name.isEmpty {
        fatalError("a part lies outside the body or has no name")
    }
    return 0
}
