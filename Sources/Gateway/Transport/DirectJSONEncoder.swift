import Foundation
import NIOCore

/// Encodes the gateway's answers as compact JSON written straight into a `ByteBuffer`.
///
/// Foundation's `JSONEncoder` builds a tree of boxed values and then writes it: about 6 µs for a
/// user profile in its envelope, some 5% of the CPU of a whole `GET /user/current` on the
/// benchmark machine. This writes each value as its `encode(to:)` hands it over. Object keys come
/// in the order the type encodes them (`JSONEncoder` here sorted them; JSON gives order no meaning).
///
/// What it does not do the way `JSONEncoder` does (`Data`, `URL` and `Decimal`, which
/// `JSONEncoder` treats specially; `Float`; non-finite numbers; a key written twice; a value
/// whose encoding failed part way; super encoders; writes to a container after
/// a later sibling was opened) makes `bytes` answer nil, and the caller encodes the
/// value with `JSONEncoder` instead: the bytes are then exactly what they were before.
enum DirectJSONEncoder {
    /// `value` as JSON, or nil when only `JSONEncoder` writes it faithfully.
    static func bytes(_ value: some Encodable, prefix: StaticString = "", suffix: StaticString = "") throws -> ByteBuffer? {
        // Written by the writer alone, so that the buffer is never shared while it grows.
        let writer = JSONByteWriter(buffer: ByteBufferAllocator().buffer(capacity: 512))
        writer.buffer.writeStaticString(prefix)
        try writer.writeValue(value)
        writer.closeFrames(downTo: 0)
        if writer.unsupported { return nil }
        writer.buffer.writeStaticString(suffix)
        return writer.buffer
    }
}

/// The output and the objects and arrays still open, innermost last. Containers are closed when
/// a write goes to a container below them or the value that opened them has been encoded.
final class JSONByteWriter {
    fileprivate struct Frame {
        let id: Int
        let isObject: Bool
        /// Where this object's keys start in `keys`.
        let firstKey: Int
        var isEmpty = true
    }

    var buffer: ByteBuffer
    fileprivate var frames: [Frame] = []
    /// The keys of the open objects, outermost first: JSONEncoder keeps one entry per key (the
    /// last write wins), which a writer that never goes back cannot do, so a repeat is left to it.
    private var keys: [String] = []
    private var nextFrameID = 0
    /// Set by what cannot be written faithfully; the value is then encoded again by `JSONEncoder`.
    var unsupported = false

    init(buffer: ByteBuffer) {
        self.buffer = buffer
        frames.reserveCapacity(8)
        keys.reserveCapacity(32)
    }

    var depth: Int { frames.count }

    fileprivate func frameID(atDepth depth: Int) -> Int { frames[depth - 1].id }

    fileprivate func open(object: Bool) -> Int {
        nextFrameID += 1
        frames.append(Frame(id: nextFrameID, isObject: object, firstKey: keys.count))
        buffer.writeInteger(object ? UInt8(ascii: "{") : UInt8(ascii: "["))
        return nextFrameID
    }

    func closeFrames(downTo depth: Int) {
        while frames.count > depth {
            let frame = frames.removeLast()
            keys.removeSubrange(frame.firstKey...)
            buffer.writeInteger(frame.isObject ? UInt8(ascii: "}") : UInt8(ascii: "]"))
        }
    }

    /// Prepares the container `id` at `depth` for its next element: closes what was opened after
    /// it and writes the comma. False when that container was already closed.
    fileprivate func beginElement(ofFrame id: Int, atDepth depth: Int) -> Bool {
        guard depth <= frames.count, frames[depth - 1].id == id else {
            unsupported = true
            return false
        }
        closeFrames(downTo: depth)
        if frames[depth - 1].isEmpty {
            frames[depth - 1].isEmpty = false
        } else {
            buffer.writeInteger(UInt8(ascii: ","))
        }
        return true
    }

    /// After `beginElement` of the innermost object.
    fileprivate func writeKey(_ key: String) {
        if let frame = frames.last, keys[frame.firstKey...].contains(key) { unsupported = true }
        keys.append(key)
        writeString(key)
        buffer.writeInteger(UInt8(ascii: ":"))
    }

    func writeString(_ string: String) {
        buffer.writeInteger(UInt8(ascii: "\""))
        var pending = string.utf8.startIndex
        let utf8 = string.utf8
        var index = pending
        while index != utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 {
                buffer.writeSubstring(Substring(utf8[pending..<index]))
                writeEscaped(byte)
                pending = utf8.index(after: index)
            }
            index = utf8.index(after: index)
        }
        if pending == utf8.startIndex {
            buffer.writeString(string)
        } else {
            buffer.writeSubstring(Substring(utf8[pending..<utf8.endIndex]))
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    private func writeEscaped(_ byte: UInt8) {
        switch byte {
        case UInt8(ascii: "\""): buffer.writeStaticString("\\\"")
        case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
        case 0x08: buffer.writeStaticString("\\b")
        case 0x0C: buffer.writeStaticString("\\f")
        case 0x0A: buffer.writeStaticString("\\n")
        case 0x0D: buffer.writeStaticString("\\r")
        case 0x09: buffer.writeStaticString("\\t")
        default:
            buffer.writeStaticString("\\u00")
            buffer.writeInteger(Self.hexDigits[Int(byte >> 4)])
            buffer.writeInteger(Self.hexDigits[Int(byte & 0xF)])
        }
    }

    func writeInteger(_ value: some BinaryInteger) {
        guard let value = Int64(exactly: value) else {
            buffer.writeString(String(value))
            return
        }
        if value < 0 { buffer.writeInteger(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        // Digits from the last, into 20 bytes (UInt64's most), without a String in between.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var start = digits.count
            repeat {
                start -= 1
                digits[start] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            buffer.writeBytes(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: digits[start...])))
        }
    }

    func writeFloatingPoint(_ value: Double) {
        guard value.isFinite else {
            unsupported = true
            buffer.writeStaticString("null")
            return
        }
        var text = value.description
        // As JSONEncoder writes them: 3.0 as 3.
        if text.hasSuffix(".0") { text.removeLast(2) }
        buffer.writeString(text)
    }

    /// JSONEncoder writes a Float's shortest form (0.1, not 0.10000000149011612): left to it.
    func writeFloat(_ value: Float) {
        unsupported = true
        writeNull()
    }

    func writeBool(_ value: Bool) {
        buffer.writeStaticString(value ? "true" : "false")
    }

    func writeNull() {
        buffer.writeStaticString("null")
    }

    /// Any value: the common leaves directly, the rest through their `encode(to:)`.
    func writeValue<T: Encodable>(_ value: T) throws {
        // Metatype comparisons, not casts: cheap in code that is not specialized for T.
        if T.self == String.self, let string = value as? String {
            writeString(string)
        } else if T.self == Int.self, let int = value as? Int {
            writeInteger(int)
        } else if T.self == Int64.self, let int = value as? Int64 {
            writeInteger(int)
        } else if T.self == Bool.self, let bool = value as? Bool {
            writeBool(bool)
        } else if T.self == Double.self, let double = value as? Double {
            writeFloatingPoint(double)
        } else if T.self == Data.self || T.self == URL.self || T.self == Decimal.self {
            // JSONEncoder writes these its own way (base64, an absolute string, a plain number).
            unsupported = true
            writeNull()
        } else {
            let depth = frames.count
            let start = buffer.writerIndex
            do {
                try value.encode(to: DirectValueEncoder(writer: self))
            } catch {
                // Whatever was written of it stays in the output even if a caller catches this.
                unsupported = true
                throw error
            }
            if buffer.writerIndex == start {
                // What JSONEncoder writes for a value that encodes nothing.
                buffer.writeStaticString("{}")
            }
            closeFrames(downTo: depth)
        }
    }
}

extension JSONByteWriter {
    /// What a super encoder gets: JSONEncoder merges what it writes, this writer leaves it to it.
    fileprivate func unsupportedEncoder() -> any Encoder {
        unsupported = true
        return DirectValueEncoder(writer: JSONByteWriter(buffer: ByteBuffer()))
    }
}

/// The encoder handed to one value's `encode(to:)`.
private final class DirectValueEncoder: Encoder {
    let writer: JSONByteWriter
    var wroteSomething = false
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(writer: JSONByteWriter) {
        self.writer = writer
    }

    /// The object this value opened, while it is still open.
    private var object: (id: Int, depth: Int)?

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        // A value that writes itself in parts (its own fields, then another value's encoded into
        // the same encoder) asks again: the parts go into the one object.
        if let object, object.depth <= writer.depth, writer.frameID(atDepth: object.depth) == object.id {
            return KeyedEncodingContainer(DirectKeyedContainer<Key>(writer: writer, frame: object))
        }
        let frame = openContainer(object: true)
        object = frame
        return KeyedEncodingContainer(DirectKeyedContainer<Key>(writer: writer, frame: frame))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        DirectUnkeyedContainer(writer: writer, frame: openContainer(object: false))
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        if wroteSomething { writer.unsupported = true }
        wroteSomething = true
        return DirectSingleValueContainer(writer: writer)
    }

    /// A second container for one value (a class and its superclass, say) is JSONEncoder's to merge.
    private func openContainer(object: Bool) -> (id: Int, depth: Int) {
        if wroteSomething { writer.unsupported = true }
        wroteSomething = true
        let id = writer.open(object: object)
        return (id, writer.depth)
    }
}

private struct DirectKeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let writer: JSONByteWriter
    let frame: (id: Int, depth: Int)
    var codingPath: [any CodingKey] { [] }

    private func begin(_ key: Key) -> Bool {
        guard writer.beginElement(ofFrame: frame.id, atDepth: frame.depth) else { return false }
        writer.writeKey(key.stringValue)
        return true
    }

    mutating func encodeNil(forKey key: Key) throws { if begin(key) { writer.writeNull() } }
    mutating func encode(_ value: Bool, forKey key: Key) throws { if begin(key) { writer.writeBool(value) } }
    mutating func encode(_ value: String, forKey key: Key) throws { if begin(key) { writer.writeString(value) } }
    mutating func encode(_ value: Double, forKey key: Key) throws { if begin(key) { writer.writeFloatingPoint(value) } }
    mutating func encode(_ value: Float, forKey key: Key) throws { if begin(key) { writer.writeFloat(value) } }
    mutating func encode(_ value: Int, forKey key: Key) throws { if begin(key) { writer.writeInteger(value) } }
    mutating func encode(_ value: Int8, forKey key: Key) throws { if begin(key) { writer.writeInteger(value) } }
    mutating func encode(_ value: Int16, forKey key: Key) throws { if begin(key) { writer.writeInteger(value) } }
    mutating func encode(_ value: Int32, forKey key: Key) throws { if begin(key) { writer.writeInteger(value) } }
    mutating func encode(_ value: Int64, forKey key: Key) throws { if begin(key) { writer.writeInteger(value) } }
    mutating func encode(_ value: UInt, forKey key: Key) throws { if begin(key) { writer.writeInteger(value) } }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { if begin(key) { writer.writeInteger(value) } }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { if begin(key) { writer.writeInteger(value) } }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { if begin(key) { writer.writeInteger(value) } }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { if begin(key) { writer.writeInteger(value) } }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws { if begin(key) { try writer.writeValue(value) } }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        _ = begin(key)
        return KeyedEncodingContainer(DirectKeyedContainer<NestedKey>(writer: writer, frame: (writer.open(object: true), writer.depth)))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        _ = begin(key)
        return DirectUnkeyedContainer(writer: writer, frame: (writer.open(object: false), writer.depth))
    }

    mutating func superEncoder() -> any Encoder { writer.unsupportedEncoder() }
    mutating func superEncoder(forKey key: Key) -> any Encoder { writer.unsupportedEncoder() }
}

private struct DirectUnkeyedContainer: UnkeyedEncodingContainer {
    let writer: JSONByteWriter
    let frame: (id: Int, depth: Int)
    private(set) var count = 0
    var codingPath: [any CodingKey] { [] }

    init(writer: JSONByteWriter, frame: (id: Int, depth: Int)) {
        self.writer = writer
        self.frame = frame
    }

    private mutating func begin() -> Bool {
        count += 1
        return writer.beginElement(ofFrame: frame.id, atDepth: frame.depth)
    }

    mutating func encodeNil() throws { if begin() { writer.writeNull() } }
    mutating func encode(_ value: Bool) throws { if begin() { writer.writeBool(value) } }
    mutating func encode(_ value: String) throws { if begin() { writer.writeString(value) } }
    mutating func encode(_ value: Double) throws { if begin() { writer.writeFloatingPoint(value) } }
    mutating func encode(_ value: Float) throws { if begin() { writer.writeFloat(value) } }
    mutating func encode(_ value: Int) throws { if begin() { writer.writeInteger(value) } }
    mutating func encode(_ value: Int64) throws { if begin() { writer.writeInteger(value) } }
    mutating func encode(_ value: UInt64) throws { if begin() { writer.writeInteger(value) } }
    mutating func encode<T: Encodable>(_ value: T) throws { if begin() { try writer.writeValue(value) } }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        _ = begin()
        return KeyedEncodingContainer(DirectKeyedContainer<NestedKey>(writer: writer, frame: (writer.open(object: true), writer.depth)))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        _ = begin()
        return DirectUnkeyedContainer(writer: writer, frame: (writer.open(object: false), writer.depth))
    }

    mutating func superEncoder() -> any Encoder { writer.unsupportedEncoder() }
}

private struct DirectSingleValueContainer: SingleValueEncodingContainer {
    let writer: JSONByteWriter
    var codingPath: [any CodingKey] { [] }

    mutating func encodeNil() throws { writer.writeNull() }
    mutating func encode(_ value: Bool) throws { writer.writeBool(value) }
    mutating func encode(_ value: String) throws { writer.writeString(value) }
    mutating func encode(_ value: Double) throws { writer.writeFloatingPoint(value) }
    mutating func encode(_ value: Float) throws { writer.writeFloat(value) }
    mutating func encode(_ value: Int) throws { writer.writeInteger(value) }
    mutating func encode(_ value: Int8) throws { writer.writeInteger(value) }
    mutating func encode(_ value: Int16) throws { writer.writeInteger(value) }
    mutating func encode(_ value: Int32) throws { writer.writeInteger(value) }
    mutating func encode(_ value: Int64) throws { writer.writeInteger(value) }
    mutating func encode(_ value: UInt) throws { writer.writeInteger(value) }
    mutating func encode(_ value: UInt8) throws { writer.writeInteger(value) }
    mutating func encode(_ value: UInt16) throws { writer.writeInteger(value) }
    mutating func encode(_ value: UInt32) throws { writer.writeInteger(value) }
    mutating func encode(_ value: UInt64) throws { writer.writeInteger(value) }
    mutating func encode<T: Encodable>(_ value: T) throws { try writer.writeValue(value) }
}
