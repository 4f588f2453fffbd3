import AISaaSProtos
import GRPCCore
import Platform
import SwiftProtobuf

/// The user service's client in `aisaas all`: each call runs the gateway's interceptors, then the
/// service's interceptors and handler on the caller's event loop (`DirectUnaryCaller`), with no
/// transport between them. Every method of the service is unary; one added to the contract fails to compile here
/// until it is added below.
struct DirectUserServiceClient: Grpc_User_V1_UserService.ClientProtocol {
    private typealias Served = any Grpc_User_V1_UserService.StreamingServiceProtocol
    private typealias Method = Grpc_User_V1_UserService.Method
    let caller: DirectUnaryCaller

    @concurrent func createUser<Result: Sendable>(
        request: ClientRequest<Grpc_User_V1_CreateUserRequest>, serializer: some MessageSerializer<Grpc_User_V1_CreateUserRequest>,
        deserializer: some MessageDeserializer<Grpc_User_V1_UserModel>, options: CallOptions,
        onResponse: @concurrent @Sendable @escaping (ClientResponse<Grpc_User_V1_UserModel>) async throws -> Result
    ) async throws -> Result {
        try await caller.unary(request, method: Method.CreateUser.descriptor, options: options, of: Served.self, handler: {
            try await $0.createUser(request: $1, context: $2)
        }, onResponse: onResponse)
    }

    @concurrent func deleteUser<Result: Sendable>(
        request: ClientRequest<Grpc_User_V1_QueryUserByIdRequest>, serializer: some MessageSerializer<Grpc_User_V1_QueryUserByIdRequest>,
        deserializer: some MessageDeserializer<SwiftProtobuf.Google_Protobuf_Empty>, options: CallOptions,
        onResponse: @concurrent @Sendable @escaping (ClientResponse<SwiftProtobuf.Google_Protobuf_Empty>) async throws -> Result
    ) async throws -> Result {
        try await caller.unary(request, method: Method.DeleteUser.descriptor, options: options, of: Served.self, handler: {
            try await $0.deleteUser(request: $1, context: $2)
        }, onResponse: onResponse)
    }

    @concurrent func updateUser<Result: Sendable>(
        request: ClientRequest<Grpc_User_V1_UpdateUserRequest>, serializer: some MessageSerializer<Grpc_User_V1_UpdateUserRequest>,
        deserializer: some MessageDeserializer<SwiftProtobuf.Google_Protobuf_Empty>, options: CallOptions,
        onResponse: @concurrent @Sendable @escaping (ClientResponse<SwiftProtobuf.Google_Protobuf_Empty>) async throws -> Result
    ) async throws -> Result {
        try await caller.unary(request, method: Method.UpdateUser.descriptor, options: options, of: Served.self, handler: {
            try await $0.updateUser(request: $1, context: $2)
        }, onResponse: onResponse)
    }

    @concurrent func getUserByAccessKey<Result: Sendable>(
        request: ClientRequest<Grpc_User_V1_QueryUserByAccessKeyRequest>, serializer: some MessageSerializer<Grpc_User_V1_QueryUserByAccessKeyRequest>,
        deserializer: some MessageDeserializer<Grpc_User_V1_UserModel>, options: CallOptions,
        onResponse: @concurrent @Sendable @escaping (ClientResponse<Grpc_User_V1_UserModel>) async throws -> Result
    ) async throws -> Result {
        try await caller.unary(request, method: Method.GetUserByAccessKey.descriptor, options: options, of: Served.self, handler: {
            try await $0.getUserByAccessKey(request: $1, context: $2)
        }, onResponse: onResponse)
    }

    @concurrent func getUserByName<Result: Sendable>(
        request: ClientRequest<Grpc_User_V1_QueryUserByNameRequest>, serializer: some MessageSerializer<Grpc_User_V1_QueryUserByNameRequest>,
        deserializer: some MessageDeserializer<Grpc_User_V1_UserModel>, options: CallOptions,
        onResponse: @concurrent @Sendable @escaping (ClientResponse<Grpc_User_V1_UserModel>) async throws -> Result
    ) async throws -> Result {
        try await caller.unary(request, method: Method.GetUserByName.descriptor, options: options, of: Served.self, handler: {
            try await $0.getUserByName(request: $1, context: $2)
        }, onResponse: onResponse)
    }

    @concurrent func getUserById<Result: Sendable>(
        request: ClientRequest<Grpc_User_V1_QueryUserByIdRequest>, serializer: some MessageSerializer<Grpc_User_V1_QueryUserByIdRequest>,
        deserializer: some MessageDeserializer<Grpc_User_V1_UserModel>, options: CallOptions,
        onResponse: @concurrent @Sendable @escaping (ClientResponse<Grpc_User_V1_UserModel>) async throws -> Result
    ) async throws -> Result {
        try await caller.unary(request, method: Method.GetUserById.descriptor, options: options, of: Served.self, handler: {
            try await $0.getUserById(request: $1, context: $2)
        }, onResponse: onResponse)
    }

    @concurrent func getUserModelList<Result: Sendable>(
        request: ClientRequest<SwiftProtobuf.Google_Protobuf_Empty>, serializer: some MessageSerializer<SwiftProtobuf.Google_Protobuf_Empty>,
        deserializer: some MessageDeserializer<Grpc_User_V1_UserModelList>, options: CallOptions,
        onResponse: @concurrent @Sendable @escaping (ClientResponse<Grpc_User_V1_UserModelList>) async throws -> Result
    ) async throws -> Result {
        try await caller.unary(request, method: Method.GetUserModelList.descriptor, options: options, of: Served.self, handler: {
            try await $0.getUserModelList(request: $1, context: $2)
        }, onResponse: onResponse)
    }

    @concurrent func registerUser<Result: Sendable>(
        request: ClientRequest<Grpc_User_V1_CreateUserRequest>, serializer: some MessageSerializer<Grpc_User_V1_CreateUserRequest>,
        deserializer: some MessageDeserializer<Grpc_User_V1_UserWithSecret>, options: CallOptions,
        onResponse: @concurrent @Sendable @escaping (ClientResponse<Grpc_User_V1_UserWithSecret>) async throws -> Result
    ) async throws -> Result {
        try await caller.unary(request, method: Method.RegisterUser.descriptor, options: options, of: Served.self, handler: {
            try await $0.registerUser(request: $1, context: $2)
        }, onResponse: onResponse)
    }

    @concurrent func rotateKeys<Result: Sendable>(
        request: ClientRequest<Grpc_User_V1_QueryUserByIdRequest>, serializer: some MessageSerializer<Grpc_User_V1_QueryUserByIdRequest>,
        deserializer: some MessageDeserializer<Grpc_User_V1_UserWithSecret>, options: CallOptions,
        onResponse: @concurrent @Sendable @escaping (ClientResponse<Grpc_User_V1_UserWithSecret>) async throws -> Result
    ) async throws -> Result {
        try await caller.unary(request, method: Method.RotateKeys.descriptor, options: options, of: Served.self, handler: {
            try await $0.rotateKeys(request: $1, context: $2)
        }, onResponse: onResponse)
    }

    @concurrent func verifyPassword<Result: Sendable>(
        request: ClientRequest<Grpc_User_V1_VerifyPasswordRequest>, serializer: some MessageSerializer<Grpc_User_V1_VerifyPasswordRequest>,
        deserializer: some MessageDeserializer<Grpc_User_V1_UserModel>, options: CallOptions,
        onResponse: @concurrent @Sendable @escaping (ClientResponse<Grpc_User_V1_UserModel>) async throws -> Result
    ) async throws -> Result {
        try await caller.unary(request, method: Method.VerifyPassword.descriptor, options: options, of: Served.self, handler: {
            try await $0.verifyPassword(request: $1, context: $2)
        }, onResponse: onResponse)
    }

    @concurrent func listUsers<Result: Sendable>(
        request: ClientRequest<Grpc_User_V1_ListUsersRequest>, serializer: some MessageSerializer<Grpc_User_V1_ListUsersRequest>,
        deserializer: some MessageDeserializer<Grpc_User_V1_UserPage>, options: CallOptions,
        onResponse: @concurrent @Sendable @escaping (ClientResponse<Grpc_User_V1_UserPage>) async throws -> Result
    ) async throws -> Result {
        try await caller.unary(request, method: Method.ListUsers.descriptor, options: options, of: Served.self, handler: {
            try await $0.listUsers(request: $1, context: $2)
        }, onResponse: onResponse)
    }

    @concurrent func revokeToken<Result: Sendable>(
        request: ClientRequest<Grpc_User_V1_RevokeTokenRequest>, serializer: some MessageSerializer<Grpc_User_V1_RevokeTokenRequest>,
        deserializer: some MessageDeserializer<SwiftProtobuf.Google_Protobuf_Empty>, options: CallOptions,
        onResponse: @concurrent @Sendable @escaping (ClientResponse<SwiftProtobuf.Google_Protobuf_Empty>) async throws -> Result
    ) async throws -> Result {
        try await caller.unary(request, method: Method.RevokeToken.descriptor, options: options, of: Served.self, handler: {
            try await $0.revokeToken(request: $1, context: $2)
        }, onResponse: onResponse)
    }

    @concurrent func listRevocations<Result: Sendable>(
        request: ClientRequest<Grpc_User_V1_ListRevocationsRequest>, serializer: some MessageSerializer<Grpc_User_V1_ListRevocationsRequest>,
        deserializer: some MessageDeserializer<Grpc_User_V1_RevocationList>, options: CallOptions,
        onResponse: @concurrent @Sendable @escaping (ClientResponse<Grpc_User_V1_RevocationList>) async throws -> Result
    ) async throws -> Result {
        try await caller.unary(request, method: Method.ListRevocations.descriptor, options: options, of: Served.self, handler: {
            try await $0.listRevocations(request: $1, context: $2)
        }, onResponse: onResponse)
    }

    @concurrent func verifySignature<Result: Sendable>(
        request: ClientRequest<Grpc_User_V1_VerifySignatureRequest>, serializer: some MessageSerializer<Grpc_User_V1_VerifySignatureRequest>,
        deserializer: some MessageDeserializer<Grpc_User_V1_UserModel>, options: CallOptions,
        onResponse: @concurrent @Sendable @escaping (ClientResponse<Grpc_User_V1_UserModel>) async throws -> Result
    ) async throws -> Result {
        try await caller.unary(request, method: Method.VerifySignature.descriptor, options: options, of: Served.self, handler: {
            try await $0.verifySignature(request: $1, context: $2)
        }, onResponse: onResponse)
    }

    @concurrent func verifySignatureForKey<Result: Sendable>(
        request: ClientRequest<Grpc_User_V1_VerifySignatureRequest>, serializer: some MessageSerializer<Grpc_User_V1_VerifySignatureRequest>,
        deserializer: some MessageDeserializer<Grpc_User_V1_VerifiedSignature>, options: CallOptions,
        onResponse: @concurrent @Sendable @escaping (ClientResponse<Grpc_User_V1_VerifiedSignature>) async throws -> Result
    ) async throws -> Result {
        try await caller.unary(request, method: Method.VerifySignatureForKey.descriptor, options: options, of: Served.self, handler: {
            try await $0.verifySignatureForKey(request: $1, context: $2)
        }, onResponse: onResponse)
    }

    @concurrent func recordNonce<Result: Sendable>(
        request: ClientRequest<Grpc_User_V1_RecordNonceRequest>, serializer: some MessageSerializer<Grpc_User_V1_RecordNonceRequest>,
        deserializer: some MessageDeserializer<SwiftProtobuf.Google_Protobuf_Empty>, options: CallOptions,
        onResponse: @concurrent @Sendable @escaping (ClientResponse<SwiftProtobuf.Google_Protobuf_Empty>) async throws -> Result
    ) async throws -> Result {
        try await caller.unary(request, method: Method.RecordNonce.descriptor, options: options, of: Served.self, handler: {
            try await $0.recordNonce(request: $1, context: $2)
        }, onResponse: onResponse)
    }

    @concurrent func createApiKey<Result: Sendable>(
        request: ClientRequest<Grpc_User_V1_CreateApiKeyRequest>, serializer: some MessageSerializer<Grpc_User_V1_CreateApiKeyRequest>,
        deserializer: some MessageDeserializer<Grpc_User_V1_ApiKeyWithSecret>, options: CallOptions,
        onResponse: @concurrent @Sendable @escaping (ClientResponse<Grpc_User_V1_ApiKeyWithSecret>) async throws -> Result
    ) async throws -> Result {
        try await caller.unary(request, method: Method.CreateApiKey.descriptor, options: options, of: Served.self, handler: {
            try await $0.createApiKey(request: $1, context: $2)
        }, onResponse: onResponse)
    }

    @concurrent func listApiKeys<Result: Sendable>(
        request: ClientRequest<Grpc_User_V1_ListApiKeysRequest>, serializer: some MessageSerializer<Grpc_User_V1_ListApiKeysRequest>,
        deserializer: some MessageDeserializer<Grpc_User_V1_ApiKeyList>, options: CallOptions,
        onResponse: @concurrent @Sendable @escaping (ClientResponse<Grpc_User_V1_ApiKeyList>) async throws -> Result
    ) async throws -> Result {
        try await caller.unary(request, method: Method.ListApiKeys.descriptor, options: options, of: Served.self, handler: {
            try await $0.listApiKeys(request: $1, context: $2)
        }, onResponse: onResponse)
    }

    @concurrent func revokeApiKey<Result: Sendable>(
        request: ClientRequest<Grpc_User_V1_RevokeApiKeyRequest>, serializer: some MessageSerializer<Grpc_User_V1_RevokeApiKeyRequest>,
        deserializer: some MessageDeserializer<SwiftProtobuf.Google_Protobuf_Empty>, options: CallOptions,
        onResponse: @concurrent @Sendable @escaping (ClientResponse<SwiftProtobuf.Google_Protobuf_Empty>) async throws -> Result
    ) async throws -> Result {
        try await caller.unary(request, method: Method.RevokeApiKey.descriptor, options: options, of: Served.self, handler: {
            try await $0.revokeApiKey(request: $1, context: $2)
        }, onResponse: onResponse)
    }

    @concurrent func verifyApiKey<Result: Sendable>(
        request: ClientRequest<Grpc_User_V1_VerifyApiKeyRequest>, serializer: some MessageSerializer<Grpc_User_V1_VerifyApiKeyRequest>,
        deserializer: some MessageDeserializer<Grpc_User_V1_VerifiedApiKey>, options: CallOptions,
        onResponse: @concurrent @Sendable @escaping (ClientResponse<Grpc_User_V1_VerifiedApiKey>) async throws -> Result
    ) async throws -> Result {
        try await caller.unary(request, method: Method.VerifyApiKey.descriptor, options: options, of: Served.self, handler: {
            try await $0.verifyApiKey(request: $1, context: $2)
        }, onResponse: onResponse)
    }
}
