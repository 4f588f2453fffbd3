import WireFormats

/// Whatever the bytes, the parser answers a value or an error; an accepted value written back
/// parses to itself.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    guard let value = try? JSONParser.parse(bytes) else { return 0 }
    let written = JSONWriter.bytes(value)
    guard (try? JSONParser.parse(written)) == value else { fatalError("a written value does not parse back to itself") }
    return 0
}
