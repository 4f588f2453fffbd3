import AISaaSProtos
import AKSKSigning
import Foundation
import GRPCCore
import Platform
import SwiftProtobuf

/// `grpc.user.v1.UserService`: translates between protobuf messages and `UserManager`.
/// Password hashes and secret keys never appear in a `UserModel` (fields 4 and 8 stay empty).
public struct UserGRPCService: Grpc_User_V1_UserService.SimpleServiceProtocol, DescribedService {
    private let users: UserManager
    public var serviceName: String { Grpc_User_V1_UserService.descriptor.fullyQualifiedService }

    public init(users: UserManager) {
        self.users = users
    }

    public func createUser(request: Grpc_User_V1_CreateUserRequest, context: ServerContext) async throws -> Grpc_User_V1_UserModel {
        Grpc_User_V1_UserModel(try await users.register(username: request.username, password: request.password).user)
    }

    public func registerUser(request: Grpc_User_V1_CreateUserRequest, context: ServerContext) async throws -> Grpc_User_V1_UserWithSecret {
        Grpc_User_V1_UserWithSecret(try await users.register(username: request.username, password: request.password))
    }

    public func deleteUser(request: Grpc_User_V1_QueryUserByIdRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
        try CallerPolicy.requireAdmin()
        try await users.delete(id: request.id)
        return Google_Protobuf_Empty()
    }

    public func updateUser(request: Grpc_User_V1_UpdateUserRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
        if request.hasStatus || request.hasRole || request.hasAccessKey || request.hasSecretKey {
            try CallerPolicy.requireAdmin()
        } else {
            try CallerPolicy.requireSelfOrAdmin(request.id)
        }
        var changes = UserChanges()
        if request.hasAvatar { changes.avatar = request.avatar }
        if request.hasPassword { changes.password = request.password }
        if request.hasStatus { changes.status = try UserStatus(request.status) }
        if request.hasRole { changes.role = try UserRole(request.role) }
        if request.hasAccessKey { changes.accessKey = request.accessKey }
        if request.hasSecretKey { changes.secretKey = request.secretKey }
        try await users.update(id: request.id, changes: changes)
        return Google_Protobuf_Empty()
    }

    public func getUserByAccessKey(request: Grpc_User_V1_QueryUserByAccessKeyRequest, context: ServerContext) async throws -> Grpc_User_V1_UserModel {
        Grpc_User_V1_UserModel(try await users.user(accessKey: request.accessKey))
    }

    public func getUserByName(request: Grpc_User_V1_QueryUserByNameRequest, context: ServerContext) async throws -> Grpc_User_V1_UserModel {
        Grpc_User_V1_UserModel(try await users.user(username: request.username))
    }

    public func getUserById(request: Grpc_User_V1_QueryUserByIdRequest, context: ServerContext) async throws -> Grpc_User_V1_UserModel {
        try CallerPolicy.requireSelfOrAdmin(request.id)
        return Grpc_User_V1_UserModel(try await users.user(id: request.id))
    }

    public func getUserModelList(request: Google_Protobuf_Empty, context: ServerContext) async throws -> Grpc_User_V1_UserModelList {
        try CallerPolicy.requireAdmin()
        let all = try await users.all()
        return .with { $0.results = all.map(Grpc_User_V1_UserModel.init) }
    }

    public func rotateKeys(request: Grpc_User_V1_QueryUserByIdRequest, context: ServerContext) async throws -> Grpc_User_V1_UserWithSecret {
        try CallerPolicy.requireSelfOrAdmin(request.id)
        return Grpc_User_V1_UserWithSecret(try await users.rotateKeys(id: request.id))
    }

    public func verifyPassword(request: Grpc_User_V1_VerifyPasswordRequest, context: ServerContext) async throws -> Grpc_User_V1_UserModel {
        Grpc_User_V1_UserModel(try await users.verifyPassword(username: request.username, password: request.password))
    }

    public func listUsers(request: Grpc_User_V1_ListUsersRequest, context: ServerContext) async throws -> Grpc_User_V1_UserPage {
        try CallerPolicy.requireAdmin()
        let page = try await users.list(
            current: request.hasCurrent ? Int(request.current) : nil,
            pageSize: request.hasPageSize ? Int(request.pageSize) : nil
        )
        return .with {
            $0.results = page.items.map(Grpc_User_V1_UserModel.init)
            $0.pagination = .with {
                $0.current = Int32(page.current)
                $0.pageSize = Int32(page.pageSize)
                $0.total = Int32(clamping: page.total)
            }
        }
    }

    public func revokeToken(request: Grpc_User_V1_RevokeTokenRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
        let kind = Revocation.Kind(request.kind)
        try await users.revoke(
            kind,
            subject: request.subject,
            notBefore: request.notBefore > 0 ? Date(millisecondsSince1970: request.notBefore) : nil,
            expiresAt: Date(millisecondsSince1970: request.expiresAt)
        )
        return Google_Protobuf_Empty()
    }

    public func listRevocations(request: Grpc_User_V1_ListRevocationsRequest, context: ServerContext) async throws -> Grpc_User_V1_RevocationList {
        let (revocations, serverTime, more) = try await users.revocations(
            since: Date(millisecondsSince1970: request.since), after: request.after, limit: Int(request.limit)
        )
        return .with {
            $0.serverTime = serverTime.millisecondsSince1970
            $0.more = more
            $0.results = revocations.map { revocation in
                .with {
                    $0.kind = Grpc_User_V1_RevocationKind(revocation.kind)
                    $0.subject = revocation.subject
                    $0.notBefore = revocation.notBefore.millisecondsSince1970
                    $0.expiresAt = revocation.expiresAt.millisecondsSince1970
                    $0.createdAt = revocation.createdAt.millisecondsSince1970
                    $0.securityStamp = revocation.securityStamp
                    $0.id = revocation.id
                }
            }
        }
    }

    public func verifySignature(request: Grpc_User_V1_VerifySignatureRequest, context: ServerContext) async throws -> Grpc_User_V1_UserModel {
        // Like VerifyPassword: the gateway asks before it knows the caller, so there is no
        // identity to hold it to, and the answer names the user the key belongs to.
        return Grpc_User_V1_UserModel(try await users.verifySignature(SignatureVerification(request)))
    }
}

extension UserGRPCService {
    public func verifySignatureForKey(request: Grpc_User_V1_VerifySignatureRequest, context: ServerContext) async throws -> Grpc_User_V1_VerifiedSignature {
        let (user, signingKey) = try await users.verifySignatureAndDeriveKey(SignatureVerification(request))
        return .with {
            $0.user = Grpc_User_V1_UserModel(user)
            $0.signingKey = signingKey
            $0.signingKeyExpiresAt = request.nonceExpiresAt
        }
    }

    public func recordNonce(request: Grpc_User_V1_RecordNonceRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
        try await users.recordNonce(accessKey: request.accessKey, nonce: request.nonce, expiresAt: Date(millisecondsSince1970: request.expiresAt))
        return Google_Protobuf_Empty()
    }

    public func createApiKey(request: Grpc_User_V1_CreateApiKeyRequest, context: ServerContext) async throws -> Grpc_User_V1_ApiKeyWithSecret {
        try CallerPolicy.requireSelfOrAdmin(request.userID)
        let created = try await users.createApiKey(
            userId: request.userID, name: request.name,
            expiresAt: request.hasExpiresAt ? Date(millisecondsSince1970: request.expiresAt) : nil, models: request.models
        )
        return .with {
            $0.key = Grpc_User_V1_ApiKey(created.key)
            $0.secret = created.secret
        }
    }

    public func listApiKeys(request: Grpc_User_V1_ListApiKeysRequest, context: ServerContext) async throws -> Grpc_User_V1_ApiKeyList {
        try CallerPolicy.requireSelfOrAdmin(request.userID)
        let keys = try await users.apiKeys(userId: request.userID)
        return .with { $0.results = keys.map(Grpc_User_V1_ApiKey.init) }
    }

    public func revokeApiKey(request: Grpc_User_V1_RevokeApiKeyRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
        // A user revokes their own keys; an admin anyone's (an empty user id: whoever owns it).
        let isAdmin = RequestScope.current.map { $0.role == nil || $0.role == .admin } ?? true
        if !isAdmin { try CallerPolicy.requireSelfOrAdmin(request.userID) }
        try await users.revokeApiKey(id: request.id, ownerId: isAdmin && request.userID.isEmpty ? nil : request.userID)
        return Google_Protobuf_Empty()
    }

    public func verifyApiKey(request: Grpc_User_V1_VerifyApiKeyRequest, context: ServerContext) async throws -> Grpc_User_V1_VerifiedApiKey {
        // Like VerifySignature: asked before the caller is known. The time is taken before the
        // key and its owner are read: a revocation (disable, delete) committed while they are
        // read is then newer than the verification, and drops it from the gateways' caches.
        let verifiedAt = Date()
        let (key, user) = try await users.verifyApiKey(hash: request.keySha256)
        return .with {
            $0.key = Grpc_User_V1_ApiKey(key)
            $0.user = Grpc_User_V1_UserModel(user)
            $0.serverTime = verifiedAt.millisecondsSince1970
        }
    }
}

extension Grpc_User_V1_ApiKey {
    init(_ key: ApiKey) {
        self = .with {
            $0.id = key.id
            $0.userID = key.userId
            $0.name = key.name
            $0.prefix = key.prefix
            $0.models = key.models
            $0.createdAt = key.createdAt.millisecondsSince1970
            if let used = key.lastUsedAt { $0.lastUsedAt = used.millisecondsSince1970 }
            if let expires = key.expiresAt { $0.expiresAt = expires.millisecondsSince1970 }
        }
    }
}

extension SignatureVerification {
    /// What the gateway sends to have a signature checked: everything but the secret key, which
    /// only this service can open.
    init(_ request: Grpc_User_V1_VerifySignatureRequest) {
        self.init(
            accessKey: request.accessKey, authStringPrefix: request.authStringPrefix, canonicalRequest: request.canonicalRequest,
            signature: request.signature, nonce: request.hasNonce ? request.nonce : nil,
            expiresAt: Date(millisecondsSince1970: request.nonceExpiresAt)
        )
    }
}

extension Revocation.Kind {
    init(_ wire: Grpc_User_V1_RevocationKind) {
        switch wire {
        case .user: self = .user
        case .apiKey: self = .apiKey
        case .accessKey: self = .accessKey
        default: self = .token
        }
    }
}

extension Grpc_User_V1_RevocationKind {
    init(_ kind: Revocation.Kind) {
        switch kind {
        case .token: self = .token
        case .user: self = .user
        case .apiKey: self = .apiKey
        case .accessKey: self = .accessKey
        }
    }
}

/// What a caller may do, by the identity the gateway sends as metadata (`x-user-id`,
/// `x-user-role`). A call without an identity comes from inside the platform (log-in, sign-up,
/// other services) and is not limited here; the service port must stay on the private network.
enum CallerPolicy {
    static func requireAdmin() throws {
        guard let role = RequestScope.current?.role else { return }
        guard role == .admin else { throw DomainError(.permissionDenied, "only an admin may do this") }
    }

    static func requireSelfOrAdmin(_ id: String) throws {
        guard let scope = RequestScope.current, let role = scope.role else { return }
        guard role == .admin || scope.userId == id else {
            throw DomainError(.permissionDenied, "a user may only act on their own account")
        }
    }
}

extension Grpc_User_V1_UserModel {
    init(_ user: User) {
        self = .with {
            $0.id = user.id
            $0.username = user.username
            $0.avatar = user.avatar
            $0.status = user.status == .enabled ? .enable : .disable
            $0.role = user.role == .admin ? .admin : .user
            $0.accessKey = user.accessKey
            $0.createdAt = user.createdAt.millisecondsSince1970
            $0.updatedAt = user.updatedAt.millisecondsSince1970
            $0.securityStamp = user.securityStamp
        }
    }
}

extension Grpc_User_V1_UserWithSecret {
    init(_ created: UserWithSecret) {
        self = .with {
            $0.user = Grpc_User_V1_UserModel(created.user)
            $0.secretKey = created.secretKey
        }
    }
}

extension UserStatus {
    init(_ wire: Grpc_User_V1_UserStatusEnum) throws {
        switch wire {
        case .disable: self = .disabled
        case .enable: self = .enabled
        case .UNRECOGNIZED(let value):
            throw DomainError.invalid([FieldViolation(property: "status", constraints: ["unknown status \(value)"])])
        }
    }
}

extension UserRole {
    init(_ wire: Grpc_User_V1_UserRolesEnum) throws {
        switch wire {
        case .admin: self = .admin
        case .user: self = .user
        case .UNRECOGNIZED(let value):
            throw DomainError.invalid([FieldViolation(property: "role", constraints: ["unknown role \(value)"])])
        }
    }
}
