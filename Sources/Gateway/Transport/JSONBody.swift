import Foundation
import Hummingbird
import NIOCore
import Platform
import WireFormats

/// A request's JSON object body, read with a size limit, and checked field by field.
/// Fields the route does not know are ignored: they never take effect.
struct JSONBody {
    private let fields: JSONObject
    private(set) var violations = Violations()

    /// Reads the body: 413 beyond the context's limit, 400 unless it is one JSON object (strict
    /// RFC 8259, UTF-8; an empty body is not one).
    static func read(_ request: Request, context: GatewayRequestContext) async throws -> JSONBody {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: context.maxUploadSize)
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, code: APIError.gatewayValidationCode, message: "request body is larger than \(context.maxUploadSize) bytes")
        }
        return JSONBody(fields: try parseObject(buffer))
    }

    /// The body as a JSON object, or 400 saying why it is not one (never echoing it).
    static func parseObject(_ buffer: ByteBuffer) throws -> JSONObject {
        guard buffer.readableBytes > 0 else { throw APIError.badRequest("request body must be a JSON object, got an empty body") }
        let value: JSONValue
        do {
            value = try buffer.withUnsafeReadableBytes { try JSONParser.parse($0) }
        } catch let error as JSONSyntaxError {
            throw APIError.badRequest("request body is not valid JSON: \(error.description)")
        }
        guard case .object(let fields) = value else {
            throw APIError.badRequest("request body must be a JSON object, got \(value.typeName)")
        }
        return fields
    }

    init(fields: JSONObject) {
        self.fields = fields
    }

    /// A string field; `length` counts characters.
    mutating func string(_ name: String, required: Bool, length: ClosedRange<Int>? = nil) -> String? {
        switch fields[name] {
        case nil, .null?:
            if required { violations.add(name, "\(name) is required") }
            return nil
        case .string(let value)?:
            if let length { violations.checkLength(name, value, length) }
            violations.checkNoNUL(name, value)
            return value
        case let other?:
            violations.add(name, "\(name) must be a string, got \(other.typeName)")
            return nil
        }
    }

    /// A username: required, by the account rules.
    mutating func username(_ name: String) -> String? {
        guard let value = string(name, required: true) else { return nil }
        violations.checkUsername(name, value)
        return value
    }

    /// A password by the account rules.
    mutating func password(_ name: String, required: Bool) -> String? {
        guard let value = string(name, required: required) else { return nil }
        violations.checkPassword(name, value)
        return value
    }

    /// A field that takes one of a few values, given by name (case-insensitive) or number.
    mutating func choice<Value>(_ name: String, _ options: [(name: String, number: Int, value: Value)]) -> Value? {
        let allowed = options.map { "\($0.name) (\($0.number))" }.joined(separator: ", ")
        switch fields[name] {
        case nil, .null?:
            return nil
        case .string(let text)?:
            if let match = options.first(where: { $0.name.caseInsensitiveCompare(text) == .orderedSame }) { return match.value }
        case .number(let text)?:
            if let match = options.first(where: { Double($0.number) == Double(text) }) { return match.value }
        default:
            break
        }
        violations.add(name, "\(name) must be one of \(allowed)")
        return nil
    }

    mutating func bool(_ name: String) -> Bool? {
        switch fields[name] {
        case nil, .null?: return nil
        case .bool(let value)?: return value
        case let other?:
            violations.add(name, "\(name) must be a boolean, got \(other.typeName)")
            return nil
        }
    }

    mutating func number(_ name: String, range: ClosedRange<Double>) -> Double? {
        switch fields[name] {
        case nil, .null?: return nil
        case .number(let text)?:
            guard let value = Double(text), range.contains(value) else {
                violations.add(name, "\(name) must be from \(range.lowerBound) to \(range.upperBound)")
                return nil
            }
            return value
        case let other?:
            violations.add(name, "\(name) must be a number, got \(other.typeName)")
            return nil
        }
    }

    /// A whole number; JSON numbers are doubles, so the value must be integral and in range.
    mutating func integer(_ name: String, range: ClosedRange<Int64>) -> Int64? {
        guard let value = number(name, range: Double(range.lowerBound)...Double(range.upperBound)) else { return nil }
        guard value.rounded() == value else {
            violations.add(name, "\(name) must be a whole number")
            return nil
        }
        return Int64(value)
    }

    /// An array of strings, each of `length` characters.
    mutating func strings(_ name: String, maxCount: Int, length: ClosedRange<Int>) -> [String]? {
        switch fields[name] {
        case nil, .null?:
            return nil
        case .array(let items)?:
            if items.count > maxCount { violations.add(name, "\(name) must have at most \(maxCount) items") }
            var result: [String] = []
            for (index, item) in items.enumerated() {
                guard case .string(let text) = item else {
                    violations.add("\(name)[\(index)]", "\(name)[\(index)] must be a string, got \(item.typeName)")
                    continue
                }
                violations.checkLength("\(name)[\(index)]", text, length)
                violations.checkNoNUL("\(name)[\(index)]", text)
                result.append(text)
            }
            return result
        case let other?:
            violations.add(name, "\(name) must be an array, got \(other.typeName)")
            return nil
        }
    }

    /// Whether the body has the field at all (`null` included), for "set to unlimited" semantics.
    func contains(_ name: String) -> Bool { fields[name] != nil }

    /// An array of objects whose fields are all strings, such as `struct` (`key`, `value`) or
    /// `messages` (`role`, `content`, `name`). Violations name the item: `struct[2].key`.
    mutating func stringObjects(_ name: String, fields names: [String], maxCount: Int) -> [[String: String]]? {
        switch fields[name] {
        case nil, .null?:
            return nil
        case .array(let items)?:
            if items.count > maxCount { violations.add(name, "\(name) must have at most \(maxCount) items") }
            var result: [[String: String]] = []
            for (index, item) in items.enumerated() {
                guard case .object(let object) = item else {
                    violations.add("\(name)[\(index)]", "\(name)[\(index)] must be an object, got \(item.typeName)")
                    continue
                }
                var values: [String: String] = [:]
                for field in names {
                    switch object[field] {
                    case nil, .null?: break
                    case .string(let text)?:
                        violations.checkNoNUL("\(name)[\(index)].\(field)", text)
                        values[field] = text
                    case let other?:
                        violations.add("\(name)[\(index)].\(field)", "\(name)[\(index)].\(field) must be a string, got \(other.typeName)")
                    }
                }
                result.append(values)
            }
            return result
        case let other?:
            violations.add(name, "\(name) must be an array, got \(other.typeName)")
            return nil
        }
    }

    /// Throws 422 listing every failing field, if any failed.
    func finish() throws {
        if !violations.isEmpty { throw APIError.invalidBody(violations.items) }
    }
}

/// An identifier that cannot name anything (`IdentifierRule`) is refused at the gateway without a
/// service call and without being echoed.
enum Identifier {
    static let maxLength = IdentifierRule.maxLength

    static func isPlausible(_ value: String) -> Bool { IdentifierRule.isPlausible(value) }

    /// `value` if it could be an identifier; otherwise 404 saying `what` does not exist.
    static func require(_ value: String, notFound what: String) throws -> String {
        guard isPlausible(value) else { throw APIError(.notFound, message: "no such \(what)") }
        return value
    }

    /// The path parameter `name`, checked the same way.
    static func path(_ name: String, _ context: GatewayRequestContext, notFound what: String) throws -> String {
        try require(try context.parameters.require(name), notFound: what)
    }
}

/// Pagination from the query string: `current` ≥ 1 (default 1), `pageSize` 1–100 (default 50).
struct PageQuery {
    var current: Int
    var pageSize: Int

    init(_ request: Request) throws {
        var violations = Violations()
        let query = request.uri.queryParameters
        func read(_ name: String, default defaultValue: Int, range: ClosedRange<Int>) -> Int {
            guard let text = query[name[...]].map(String.init) else { return defaultValue }
            guard let value = Int(text), range.contains(value) else {
                violations.add(name, "\(name) must be an integer from \(range.lowerBound) to \(range.upperBound)")
                return defaultValue
            }
            return value
        }
        current = read("current", default: 1, range: 1...1_000_000)
        pageSize = read("pageSize", default: 50, range: 1...100)
        if !violations.isEmpty { throw APIError.invalidBody(violations.items) }
    }
}
