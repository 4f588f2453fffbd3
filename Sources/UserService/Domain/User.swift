import Foundation

public enum UserStatus: Int, Sendable, Equatable {
    case disabled = 0
    case enabled = 1
}

public enum UserRole: Int, Sendable, Equatable {
    case admin = 0
    case user = 1

    public var name: String { self == .admin ? "admin" : "user" }
}

/// A user as the rest of the platform may see it: no password hash, no secret key.
public struct User: Sendable, Equatable {
    public var id: String
    public var username: String
    public var avatar: String
    public var status: UserStatus
    public var role: UserRole
    public var accessKey: String
    public var createdAt: Date
    public var updatedAt: Date
    /// Raised by every change that ends the user's sessions (password, role, status, deletion),
    /// in the same write: tokens carry the stamp they were issued with.
    public var securityStamp: Int64 = 0
}

/// A user as stored: with the bcrypt hash of the password and the sealed secret key.
public struct StoredUser: Sendable, Equatable {
    public var user: User
    public var passwordHash: String
    public var sealedSecretKey: String
}

/// A user with the secret key in clear, given once: when the key pair is made.
public struct UserWithSecret: Sendable, Equatable {
    public var user: User
    public var secretKey: String
}

/// The fields an update may change; `nil` leaves a field as it is.
public struct UserChanges: Sendable, Equatable {
    public var avatar: String?
    public var password: String?
    public var status: UserStatus?
    public var role: UserRole?
    public var accessKey: String?
    public var secretKey: String?

    public init(
        avatar: String? = nil, password: String? = nil, status: UserStatus? = nil, role: UserRole? = nil,
        accessKey: String? = nil, secretKey: String? = nil
    ) {
        self.avatar = avatar
        self.password = password
        self.status = status
        self.role = role
        self.accessKey = accessKey
        self.secretKey = secretKey
    }
}

/// Stored fields to overwrite; `nil` leaves a field untouched in the database.
public struct StoredUserFields: Sendable, Equatable {
    public var avatar: String?
    public var passwordHash: String?
    public var status: UserStatus?
    public var role: UserRole?
    public var accessKey: String?
    public var sealedSecretKey: String?
    public var updatedAt: Date

    public init(updatedAt: Date) {
        self.updatedAt = updatedAt
    }
}

/// What an update writes: the fields that change and the revocation it calls for, if any.
public struct UserUpdate: Sendable, Equatable {
    public var fields: StoredUserFields
    public var revocation: Revocation?

    public init(fields: StoredUserFields, revocation: Revocation?) {
        self.fields = fields
        self.revocation = revocation
    }
}

/// A revoked token (by id), or every token of a user issued before `notBefore`.
public struct Revocation: Sendable, Equatable {
    public enum Kind: Int, Sendable, Equatable {
        case token = 0
        case user = 1
        /// Subject: an API key's id.
        case apiKey = 2
        /// Subject: an access key that no longer signs (rotated, or its owner disabled or deleted).
        case accessKey = 3
    }

    public var kind: Kind
    public var subject: String
    public var notBefore: Date
    public var expiresAt: Date
    public var createdAt: Date
    /// A `.user` revocation: the user's security stamp once the change is written (set by the
    /// repository, in the same transaction).
    public var securityStamp: Int64
    /// As stored: the cursor of the page it is on (empty before it is stored).
    public var id: String

    public init(kind: Kind, subject: String, notBefore: Date, expiresAt: Date, createdAt: Date, securityStamp: Int64 = 0, id: String = "") {
        self.kind = kind
        self.subject = subject
        self.notBefore = notBefore
        self.expiresAt = expiresAt
        self.createdAt = createdAt
        self.securityStamp = securityStamp
        self.id = id
    }
}
