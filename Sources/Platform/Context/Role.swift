/// What a caller's account may do. It travels from the access token (or the key that signed the
/// request) through the gateway to the services in the `x-user-role` metadata entry; a service
/// reads it from `RequestScope` at its edge.
public enum Role: String, Sendable, Hashable, CaseIterable {
    case admin
    case user
}
