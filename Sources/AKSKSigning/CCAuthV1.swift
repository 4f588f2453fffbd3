import Crypto
import Foundation

/// The cc-auth-v1 request-signing protocol (shared/docs/aksk-v1.md): canonical forms, keys and
/// signatures. Every function is pure, so a client and the platform compute the same bytes.
public enum CCAuthV1 {
    /// The first part of every authorization string.
    public static let version = "cc-auth-v1"
    /// The request header (and query item) that carries the authorization string.
    public static let authorizationHeader = "x-authorization"
    /// The optional signed header holding the hex SHA-256 of the body.
    public static let contentSHA256Header = "x-cc-content-sha256"
    /// The optional signed header holding a single-use nonce.
    public static let nonceHeader = "x-cc-nonce"
    /// Access keys are this many characters of `[A-Za-z0-9_]`.
    public static let accessKeyLength = 20

    // MARK: - Percent-encoding

    /// JavaScript's `encodeURIComponent`: every UTF-8 byte becomes `%XX` (upper-case hex) except
    /// `A-Z a-z 0-9 - _ . ! ~ * ' ( )`.
    public static func encodeURIComponent(_ text: String) -> String {
        percentEncode(Array(text.utf8), keeping: componentSafe)
    }

    /// JavaScript's `encodeURI`: like `encodeURIComponent` but also keeps `; , / ? : @ & = + $ #`.
    public static func encodeURI(_ text: String) -> String {
        percentEncode(Array(text.utf8), keeping: uriSafe)
    }

    /// Undoes percent-encoding. A `%` not followed by two hex digits stays as it is (like
    /// Node's `querystring.unescape`), so decoding never fails; with `plusAsSpace`, `+` is a space
    /// as in `application/x-www-form-urlencoded` query strings. Works on bytes: the result may
    /// be any byte sequence, which is why canonical forms re-encode bytes rather than text.
    public static func percentDecode(_ text: Substring, plusAsSpace: Bool) -> [UInt8] {
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%"), index + 2 < bytes.count,
                let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) {
                out.append(high << 4 | low)
                index += 3
                continue
            }
            out.append(plusAsSpace && byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
            index += 1
        }
        return out
    }

    // MARK: - Canonical forms

    /// The URL path, decoded then encoded with `encodeURI`, so `/example/测试` and its
    /// percent-encoded wire form `/example/%E6%B5%8B%E8%AF%95` give the same result. An empty path is `/`.
    public static func canonicalURI(path: String) -> String {
        let path = path.isEmpty ? "/" : path
        let decoded = percentDecode(Substring(path), plusAsSpace: false)
        let encoded = percentEncode(decoded, keeping: uriSafe)
        return encoded.hasPrefix("/") ? encoded : "/" + encoded
    }

    /// The canonical query string of a raw query (the part after `?`, without it; nil or empty for
    /// none). Items are split on `&`; keys and values are percent-decoded (`+` is a space) and
    /// re-encoded with `encodeURIComponent`; an item without `=` or with an empty value becomes
    /// `key=`; items keyed `x-authorization` and empty items (`a=1&&b=2`) are dropped; the
    /// results are sorted by byte order and joined with `&`.
    public static func canonicalQueryString(rawQuery: String?) -> String {
        guard let rawQuery, !rawQuery.isEmpty else { return "" }
        var items: [String] = []
        for item in rawQuery.split(separator: "&", omittingEmptySubsequences: true) {
            let key: Substring
            let value: Substring
            if let equals = item.firstIndex(of: "=") {
                key = item[..<equals]
                value = item[item.index(after: equals)...]
            } else {
                key = item
                value = ""
            }
            let decodedKey = percentDecode(key, plusAsSpace: true)
            if decodedKey.elementsEqual(authorizationHeader.utf8) { continue }
            let decodedValue = percentDecode(value, plusAsSpace: true)
            items.append(percentEncode(decodedKey, keeping: componentSafe) + "=" + percentEncode(decodedValue, keeping: componentSafe))
        }
        return sortedByBytes(items).joined(separator: "&")
    }

    /// The canonical query string of already decoded items (a nil value is an item without `=`).
    public static func canonicalQueryString(items: [(key: String, value: String?)]) -> String {
        let encoded = items
            .filter { $0.key != authorizationHeader }
            .map { encodeURIComponent($0.key) + "=" + encodeURIComponent($0.value ?? "") }
        return sortedByBytes(encoded).joined(separator: "&")
    }

    /// The canonical headers of the headers to sign: each as `encodeURIComponent(lower-cased name)
    /// + ":" + encodeURIComponent(trimmed value)`, sorted by byte order of the whole line, joined by `\n`.
    public static func canonicalHeaders(_ headers: [(name: String, value: String)]) -> String {
        let lines = headers.map { encodeURIComponent(lowercasedName($0.name)) + ":" + encodeURIComponent(trimmed($0.value)) }
        return sortedByBytes(lines).joined(separator: "\n")
    }

    /// `METHOD \n CanonicalURI \n CanonicalQueryString \n CanonicalHeaders`, where `headers` are
    /// exactly the signed headers.
    public static func canonicalRequest(method: String, path: String, rawQuery: String?, headers: [(name: String, value: String)]) -> String {
        method.uppercased() + "\n" + canonicalURI(path: path) + "\n" + canonicalQueryString(rawQuery: rawQuery) + "\n" + canonicalHeaders(headers)
    }

    /// Picks the signed headers out of a request's headers (names compared case-insensitively).
    /// Throws if a signed header is absent or present more than once, since either would make the
    /// canonical form ambiguous.
    public static func selectSignedHeaders(
        _ signedHeaders: [String], from headers: [(name: String, value: String)]
    ) throws(CCAuthV1Error) -> [(name: String, value: String)] {
        try signedHeaders.map { (signed) throws(CCAuthV1Error) -> (name: String, value: String) in
            let name = signed.lowercased()
            let matches = headers.filter { headerName($0.name, is: name) }
            guard let first = matches.first else { throw .missingSignedHeader(name) }
            guard matches.count == 1 else { throw .repeatedHeader(name) }
            return (name, first.value)
        }
    }

    // MARK: - Keys and signatures

    /// `"cc-auth-v1/" + AK + "/" + timestamp + "/" + expirationPeriodInSeconds`.
    public static func authStringPrefix(accessKey: String, timestamp: String, expirationSeconds: String) -> String {
        [version, accessKey, timestamp, expirationSeconds].joined(separator: "/")
    }

    /// `HMAC_HEX(SK, authStringPrefix)`: the 64 hex characters are the key of the next step.
    public static func signingKey(secretKey: String, authStringPrefix: String) -> String {
        hmacHex(key: secretKey, message: authStringPrefix)
    }

    /// `HMAC_HEX(signingKey, canonicalRequest)`.
    public static func signature(signingKey: String, canonicalRequest: String) -> String {
        hmacHex(key: signingKey, message: canonicalRequest)
    }

    /// The signature of a canonical request made with a secret key.
    public static func signature(secretKey: String, authStringPrefix: String, canonicalRequest: String) -> String {
        signature(signingKey: signingKey(secretKey: secretKey, authStringPrefix: authStringPrefix), canonicalRequest: canonicalRequest)
    }

    /// Recomputes the signature and compares it with `signature` in constant time.
    public static func verify(secretKey: String, authStringPrefix: String, canonicalRequest: String, signature claimed: String) -> Bool {
        constantTimeEquals(signature(secretKey: secretKey, authStringPrefix: authStringPrefix, canonicalRequest: canonicalRequest), claimed)
    }

    /// HMAC-SHA256 of the UTF-8 bytes of `message` under the UTF-8 bytes of `key`, as lower-case hex.
    public static func hmacHex(key: String, message: String) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: Array(message.utf8), using: SymmetricKey(data: Array(key.utf8)))
        return hex(code)
    }

    /// The lower-case hex SHA-256 of some bytes: the value of `x-cc-content-sha256`.
    public static func sha256Hex(_ bytes: some DataProtocol) -> String {
        hex(SHA256.hash(data: bytes))
    }

    /// Compares two strings' bytes in time that depends only on their lengths, so a forger
    /// learns nothing from how long a wrong signature took to refuse.
    public static func constantTimeEquals(_ lhs: String, _ rhs: String) -> Bool {
        let left = Array(lhs.utf8)
        let right = Array(rhs.utf8)
        guard left.count == right.count else { return false }
        var difference: UInt8 = 0
        for index in left.indices { difference |= left[index] ^ right[index] }
        return difference == 0
    }

    // MARK: - Formats

    /// Whether `text` is an access key: 20 characters of `[A-Za-z0-9_]`.
    public static func isAccessKey(_ text: String) -> Bool {
        text.utf8.count == accessKeyLength && text.utf8.allSatisfy(isKeyByte)
    }

    /// Whether `text` is a signature: 64 lower-case hex characters.
    public static func isSignature(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    /// The expiration period as a positive number of seconds, or nil when it is not a positive
    /// integer written in decimal digits (or too large to be one).
    public static func expirationSeconds(_ text: String) -> Int? {
        guard !text.isEmpty, text.utf8.count <= 18, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let value = Int(text), value > 0 else { return nil }
        return value
    }

    // MARK: - Helpers

    static func isKeyByte(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x5F
    }

    /// Whether header name `name` is `lowercased` (a lower-case name) in any case. Header names
    /// are ASCII tokens, so this compares bytes and lower-cases ASCII letters only.
    public static func headerName(_ name: String, is lowercased: String) -> Bool {
        name.utf8.count == lowercased.utf8.count
            && zip(name.utf8, lowercased.utf8).allSatisfy { $0 == $1 || (0x41...0x5A).contains($0) && $0 | 0x20 == $1 }
    }

    /// A header value without its leading and trailing white space (as the canonical form has it).
    public static func trimmed(_ text: String) -> String {
        let scalars = text.unicodeScalars
        // Most values have no surrounding white space: no copy then.
        guard let first = scalars.first, let last = scalars.last,
              first.properties.isWhitespace || last.properties.isWhitespace else { return text }
        let start = scalars.firstIndex { !$0.properties.isWhitespace } ?? scalars.endIndex
        let end = scalars[start...].lastIndex { !$0.properties.isWhitespace }.map(scalars.index(after:)) ?? start
        return String(scalars[start..<end])
    }

    /// `text.lowercased()`, without the copy for the usual header name: lower-case ASCII already.
    static func lowercasedName(_ text: String) -> String {
        text.utf8.allSatisfy({ $0 < 0x80 && !(0x41...0x5A).contains($0) }) ? text : text.lowercased()
    }

    static func sortedByBytes(_ strings: [String]) -> [String] {
        strings.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: byte - 0x30
        case 0x41...0x46: byte - 0x41 + 10
        case 0x61...0x66: byte - 0x61 + 10
        default: nil
        }
    }

    private static let componentSafe = ByteSet("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()".utf8)
    private static let uriSafe = ByteSet(componentSafe.bytes + Array(";,/?:@&=+$#".utf8))

    /// A set of bytes as a 256-entry table: a lookup per byte of every canonical form, no hashing.
    struct ByteSet: Sendable {
        let bytes: [UInt8]
        private let table: [Bool]

        init(_ bytes: some Sequence<UInt8>) {
            self.bytes = Array(bytes)
            var table = [Bool](repeating: false, count: 256)
            for byte in self.bytes { table[Int(byte)] = true }
            self.table = table
        }

        func contains(_ byte: UInt8) -> Bool { table[Int(byte)] }
    }

    private static func percentEncode(_ bytes: [UInt8], keeping safe: ByteSet) -> String {
        let digits = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        for byte in bytes {
            if safe.contains(byte) {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(digits[Int(byte >> 4)])
                out.append(digits[Int(byte & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Why a request could not be signed or its authorization string not be read.
public enum CCAuthV1Error: Error, Sendable, Equatable, CustomStringConvertible {
    /// The authorization string does not have six `/`-separated parts.
    case malformedAuthorization
    /// The request has no `host` header and the URL names no host.
    case missingHost
    /// A header listed in signedHeaders is not in the request.
    case missingSignedHeader(String)
    /// A header to sign appears more than once.
    case repeatedHeader(String)
    /// The expiration is not a positive integer.
    case invalidExpiration

    public var description: String {
        switch self {
        case .malformedAuthorization: "the authorization string must have six '/'-separated parts"
        case .missingHost: "the request has no host header and the URL names no host"
        case .missingSignedHeader(let name): "signed header '\(name)' is not in the request"
        case .repeatedHeader(let name): "header '\(name)' appears more than once"
        case .invalidExpiration: "the expiration must be a positive number of seconds"
        }
    }
}
