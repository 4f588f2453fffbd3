import AISaaSProtos
import Platform

/// A user as the HTTP API shows it. `status`: 0 disabled, 1 enabled; `role`: 0 admin, 1 user;
/// times in milliseconds since the epoch.
struct UserProfile: Encodable {
    let id: String
    let username: String
    let avatar: String
    let status: Int
    let role: Int
    let accessKey: String
    let createdAt: Int64
    let updatedAt: Int64

    init(_ model: Grpc_User_V1_UserModel) {
        id = model.id
        username = model.username
        avatar = model.avatar
        status = model.status.rawValue
        role = model.role.rawValue
        accessKey = model.accessKey
        createdAt = Int64(model.createdAt)
        updatedAt = Int64(model.updatedAt)
    }
}

/// A user with the secret key in clear: the answer of register, shown once. Encodes as the
/// profile's fields plus `secretKey`.
struct RegisteredUser: Encodable {
    let profile: UserProfile
    let secretKey: String

    init(_ created: Grpc_User_V1_UserWithSecret) {
        profile = UserProfile(created.user)
        secretKey = created.secretKey
    }

    private enum CodingKeys: String, CodingKey { case secretKey }

    func encode(to encoder: any Encoder) throws {
        try profile.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(secretKey, forKey: .secretKey)
    }
}

/// The profile after a password change, with the token that replaces the revoked ones:
/// the profile's fields plus `accessToken`, `tokenType` and `expiresAt`.
struct ProfileWithToken: Encodable {
    let profile: UserProfile
    let session: LoginResult

    func encode(to encoder: any Encoder) throws {
        try profile.encode(to: encoder)
        try session.encode(to: encoder)
    }
}

struct KeyPair: Encodable {
    let accessKey: String
    let secretKey: String
}

struct LoginResult: Encodable {
    let accessToken: String
    let tokenType: String
    let expiresAt: Int64
}

struct PageInfo: Encodable {
    let current: Int
    let pageSize: Int
    let total: Int
}

struct ListPage<Item: Encodable>: Encodable {
    let results: [Item]
    let pagination: PageInfo
}

extension Grpc_User_V1_UserRolesEnum {
    /// The role as the gateway and the services' request scope carry it.
    var platformRole: Role { self == .admin ? .admin : .user }
}
