import FluentKit
import Foundation

/// A row of the `users` table.
final class UserRecord: Model, @unchecked Sendable {
    // Fluent models are reference types mutated through property wrappers; each instance here is
    // created, used and dropped inside one repository call and never shared between tasks.
    static let schema = "users"

    @ID(custom: "id", generatedBy: .user) var id: String?
    @Field(key: "username") var username: String
    @Field(key: "avatar") var avatar: String
    @Field(key: "password_hash") var passwordHash: String
    @Field(key: "status") var status: Int
    @Field(key: "role") var role: Int
    @Field(key: "access_key") var accessKey: String
    @Field(key: "secret_key") var sealedSecretKey: String
    @Field(key: "created_at") var createdAt: Date
    @Field(key: "updated_at") var updatedAt: Date
    @Field(key: "security_stamp") var securityStamp: Int64
    @Timestamp(key: "deleted_at", on: .delete) var deletedAt: Date?

    init() {}

    init(_ stored: StoredUser) {
        self.id = stored.user.id
        self.apply(stored)
    }

    func apply(_ stored: StoredUser) {
        username = stored.user.username
        avatar = stored.user.avatar
        passwordHash = stored.passwordHash
        status = stored.user.status.rawValue
        role = stored.user.role.rawValue
        accessKey = stored.user.accessKey
        sealedSecretKey = stored.sealedSecretKey
        createdAt = stored.user.createdAt
        updatedAt = stored.user.updatedAt
        securityStamp = stored.user.securityStamp
    }

    var stored: StoredUser {
        StoredUser(
            user: User(
                id: id ?? "", username: username, avatar: avatar,
                status: UserStatus(rawValue: status) ?? .disabled,
                role: UserRole(rawValue: role) ?? .user,
                accessKey: accessKey, createdAt: createdAt, updatedAt: updatedAt, securityStamp: securityStamp
            ),
            passwordHash: passwordHash,
            sealedSecretKey: sealedSecretKey
        )
    }
}

/// A row of the `revocations` table.
final class RevocationRecord: Model, @unchecked Sendable {
    // Same confinement as `UserRecord`.
    static let schema = "revocations"

    @ID(custom: "id", generatedBy: .user) var id: String?
    @Field(key: "kind") var kind: Int
    @Field(key: "subject") var subject: String
    @Field(key: "not_before") var notBefore: Date
    @Field(key: "expires_at") var expiresAt: Date
    @Field(key: "created_at") var createdAt: Date
    @Field(key: "security_stamp") var securityStamp: Int64

    init() {}

    init(id: String, _ revocation: Revocation) {
        self.id = id
        kind = revocation.kind.rawValue
        subject = revocation.subject
        notBefore = revocation.notBefore
        expiresAt = revocation.expiresAt
        createdAt = revocation.createdAt
        securityStamp = revocation.securityStamp
    }

    var revocation: Revocation {
        Revocation(
            kind: Revocation.Kind(rawValue: kind) ?? .token, subject: subject, notBefore: notBefore, expiresAt: expiresAt, createdAt: createdAt,
            securityStamp: securityStamp, id: id ?? ""
        )
    }
}
