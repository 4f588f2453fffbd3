/// One field of a request that failed validation, with every rule it broke.
public struct FieldViolation: Codable, Sendable, Equatable {
    public var property: String
    public var constraints: [String]

    public init(property: String, constraints: [String]) {
        self.property = property
        self.constraints = constraints
    }
}

/// An error raised by domain logic. It names what went wrong in the terms of the domain; the
/// transport layer (gRPC status, HTTP status) maps it, so domain code stays free of both.
public struct DomainError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case invalidArgument
        case notFound
        case alreadyExists
        case permissionDenied
        case unauthenticated
        case failedPrecondition
        case resourceExhausted
        case unavailable
        case `internal`
    }

    public var kind: Kind
    public var message: String
    public var violations: [FieldViolation]

    public init(_ kind: Kind, _ message: String, violations: [FieldViolation] = []) {
        self.kind = kind
        self.message = message
        self.violations = violations
    }

    public var description: String { "\(kind): \(message)" }

    public static func invalid(_ violations: [FieldViolation]) -> DomainError {
        let fields = violations.map(\.property).joined(separator: ", ")
        return DomainError(.invalidArgument, "invalid fields: \(fields)", violations: violations)
    }

    public static func notFound(_ message: String) -> DomainError { DomainError(.notFound, message) }
}

/// Collects every failing field of a request before reporting them together.
public struct Violations: Sendable {
    public private(set) var items: [FieldViolation] = []

    public init() {}

    public mutating func add(_ property: String, _ constraint: String) {
        if let index = items.firstIndex(where: { $0.property == property }) {
            items[index].constraints.append(constraint)
        } else {
            items.append(FieldViolation(property: property, constraints: [constraint]))
        }
    }

    public mutating func checkLength(_ property: String, _ value: String, _ range: ClosedRange<Int>) {
        let count = value.count
        if count < range.lowerBound || count > range.upperBound {
            add(property, "\(property) must be \(range.lowerBound) to \(range.upperBound) characters long")
        }
    }

    public var isEmpty: Bool { items.isEmpty }

    /// Throws `DomainError.invalid` if any field failed.
    public func throwIfAny() throws(DomainError) {
        if !items.isEmpty { throw DomainError.invalid(items) }
    }
}
