import Foundation

/// Storage of users and revocations. Lookups never return soft-deleted users.
public protocol UserRepository: Sendable {
    /// Throws `DomainError(.alreadyExists)` if the username or access key is taken.
    func insert(_ user: StoredUser) async throws
    /// Reads the (undeleted) user and writes what `change` makes of it: only the fields it gives,
    /// and the revocation if any, in one transaction that holds the user's row from before the
    /// read, so that a concurrent change waits and what `change` decides from is what it writes
    /// over. A `.user` revocation raises the user's security stamp in the same write and records
    /// the new one. Returns the user as read, nil if there is no such user. Throws
    /// `DomainError(.alreadyExists)` if the new access key is taken.
    func update(id: String, _ change: @escaping @Sendable (StoredUser) throws -> UserUpdate) async throws -> StoredUser?
    func find(id: String) async throws -> StoredUser?
    func find(username: String) async throws -> StoredUser?
    func find(accessKey: String) async throws -> StoredUser?
    /// The user with this username, deleted or not, and whether it is deleted.
    func findIncludingDeleted(username: String) async throws -> (user: StoredUser, isDeleted: Bool)?
    /// Whether any user, deleted ones included, has this username.
    func usernameTaken(_ username: String) async throws -> Bool
    /// Marks the user deleted and records the revocation (raising the stamp as `update` does), in
    /// one transaction. Returns false if
    /// there was no such (undeleted) user.
    func softDelete(id: String, at date: Date, revoking revocation: Revocation) async throws -> Bool
    /// Newest first.
    func list(offset: Int, limit: Int) async throws -> (users: [StoredUser], total: Int)
    func all() async throws -> [StoredUser]
    func count() async throws -> Int

    func insert(_ revocation: Revocation) async throws
    /// At most `limit` (nil: all) revocations created at or after `since`, still in force at
    /// `now`, with ids after `after`, in id order.
    func revocations(since: Date, after: String, limit: Int?, now: Date) async throws -> [Revocation]
    func deleteRevocations(expiredBefore date: Date) async throws

    /// Records that `nonce` was used with `accessKey` until `expiresAt`, atomically across
    /// replicas. Returns false if the pair is already recorded and has not expired at `now` (an
    /// expired record of the same pair is replaced).
    func recordNonce(accessKey: String, nonce: String, expiresAt: Date, now: Date) async throws -> Bool
    func deleteNonces(expiredBefore date: Date) async throws
}
