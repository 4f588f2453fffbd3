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
        /// Something this service depends on (an AI provider) failed or answered nonsense.
        case upstreamFailure
        /// Something this service depends on did not answer in time.
        case deadlineExceeded
        case `internal`
    }

    public var kind: Kind
    public var message: String
    public var violations: [FieldViolation]
    /// A machine-readable name for the failure when the kind alone is not enough for a client
    /// (for example `QuotaExceeded` beside a rate limit, both `resourceExhausted`).
    public var reason: String?
    /// When the caller may try again, for rate limits.
    public var retryAfterSeconds: Int?
    /// The limit a rate-limit refusal enforces, in requests per minute (for `x-ratelimit-*` headers).
    public var rateLimitPerMinute: Int?

    public init(
        _ kind: Kind, _ message: String, violations: [FieldViolation] = [], reason: String? = nil, retryAfterSeconds: Int? = nil
    ) {
        self.kind = kind
        self.message = message
        self.violations = violations
        self.reason = reason
        self.retryAfterSeconds = retryAfterSeconds
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

    /// Counts Unicode scalars, so combining marks cannot hide a long value behind few characters.
    public mutating func checkLength(_ property: String, _ value: String, _ range: ClosedRange<Int>) {
        let count = value.unicodeScalars.count
        if count < range.lowerBound || count > range.upperBound {
            add(property, "\(property) must be \(range.lowerBound) to \(range.upperBound) characters long")
        }
    }

    /// PostgreSQL cannot store U+0000 in text, and no field of this API needs one: refused up
    /// front rather than met as a database error.
    public mutating func checkNoNUL(_ property: String, _ value: String) {
        if value.utf8.contains(0) { add(property, "\(property) must not contain the NUL character (U+0000)") }
    }

    /// Account rules shared by the gateway (which reports them first) and the user service.
    public static let usernameLength = 3...50
    public static let passwordLength = 8...128

    public mutating func checkUsername(_ property: String, _ username: String) {
        checkLength(property, username, Self.usernameLength)
        if username.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.properties.generalCategory == .control }) {
            add(property, "\(property) must not contain spaces or control characters")
        }
        // Invisible and direction-changing characters (zero-width spaces, bidi overrides, the
        // BOM) would let `admin` and `admin` followed by one of them both be registered, and
        // look the same in an admin's list.
        if username.unicodeScalars.contains(where: { Self.hiddenCategories.contains($0.properties.generalCategory) }) {
            add(property, "\(property) must not contain invisible or unassigned characters")
        }
    }

    /// Characters that show nothing, or that are not characters yet.
    private static let hiddenCategories: Set<Unicode.GeneralCategory> = [.format, .unassigned, .privateUse, .surrogate, .lineSeparator, .paragraphSeparator]

    /// A name people read in lists (a chat model's, an API key's): something to see, on one
    /// line, with no invisible or direction-changing characters that would make two names look
    /// alike or a list read wrong.
    public mutating func checkDisplayName(_ property: String, _ name: String) {
        if name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            add(property, "\(property) must not contain control characters")
        }
        // Joiners and tag characters are how emoji sequences (a family, a region's flag) and some
        // scripts (Persian, Indic) are written: format characters that are part of the text.
        let textual = { (scalar: Unicode.Scalar) in scalar.value == 0x200C || scalar.value == 0x200D || (0xE0020...0xE007F).contains(scalar.value) }
        if name.unicodeScalars.contains(where: { Self.hiddenCategories.contains($0.properties.generalCategory) && !textual($0) }) {
            add(property, "\(property) must not contain invisible or unassigned characters")
        }
        if !name.isEmpty, name.unicodeScalars.allSatisfy({ $0.properties.isWhitespace }) {
            add(property, "\(property) must not be blank")
        }
    }

    public mutating func checkPassword(_ property: String, _ password: String) {
        checkLength(property, password, Self.passwordLength)
        if password.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            add(property, "\(property) must not contain control characters")
        }
    }

    public var isEmpty: Bool { items.isEmpty }

    /// Throws `DomainError.invalid` if any field failed.
    public func throwIfAny() throws(DomainError) {
        if !items.isEmpty { throw DomainError.invalid(items) }
    }
}
