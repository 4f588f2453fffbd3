import Foundation
import Logging
import Platform

/// The rules of user accounts: registration, credentials, key pairs, roles and revocations.
public struct UserManager: Sendable {
    /// The account rules the gateway also checks (`Violations.checkUsername`, `checkPassword`).
    public static let usernameLength = Violations.usernameLength
    public static let passwordLength = Violations.passwordLength
    public static let avatarMaxLength = 2048
    public static let accessKeyLength = 20
    public static let secretKeyLength = 40
    /// How long a user-wide revocation is kept; no token lives longer than this.
    public static let userRevocationLifetime: TimeInterval = 400 * 86_400

    // Not private: signature checks (UserManager+Signatures.swift) use them too.
    let repository: any UserRepository
    private let hasher: PasswordHasher
    let cipher: SecretKeyCipher
    let now: @Sendable () -> Date
    /// API keys for the OpenAI-compatible API (UserManager+ApiKeys.swift).
    let apiKeys: (any ApiKeyRepository)?

    public init(
        repository: any UserRepository, hasher: PasswordHasher, cipher: SecretKeyCipher, apiKeys: (any ApiKeyRepository)? = nil,
        now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.repository = repository
        self.apiKeys = apiKeys
        self.hasher = hasher
        self.cipher = cipher
        self.now = now
    }

    // MARK: - Accounts

    /// A username as stored and looked up: Unicode NFC, so that `é` typed as one character or as
    /// `e` and a combining accent is one name (the databases compare bytes).
    static func normalized(_ username: String) -> String {
        username.precomposedStringWithCanonicalMapping
    }

    /// The spellings a name may be stored in: NFC, and for accounts registered before names were
    /// normalized, as typed and fully decomposed.
    static func storedSpellings(of username: String) -> [String] {
        var spellings: [String] = []
        for spelling in [normalized(username), username, username.decomposedStringWithCanonicalMapping]
        where !spellings.contains(where: { Array($0.unicodeScalars) == Array(spelling.unicodeScalars) }) {
            spellings.append(spelling)
        }
        return spellings
    }

    /// Whether any account, deleted ones included, has `username` in any spelling it may be stored in.
    private func isTaken(_ username: String) async throws -> Bool {
        for spelling in Self.storedSpellings(of: username) where try await repository.usernameTaken(spelling) { return true }
        return false
    }

    public func register(username: String, password: String, role: UserRole = .user) async throws -> UserWithSecret {
        let typed = username
        let username = Self.normalized(username)
        var violations = Violations()
        Self.checkUsername(username, into: &violations)
        Self.checkPassword(password, property: "password", into: &violations)
        try violations.throwIfAny()
        if try await isTaken(typed) {
            throw DomainError(.alreadyExists, "username \(username.quotedForMessage) is already taken")
        }
        let date = now()
        let id = SortableID.make(at: date)
        let secretKey = RandomText.alphanumeric(Self.secretKeyLength)
        let stored = StoredUser(
            user: User(
                id: id, username: username, avatar: "", status: .enabled, role: role,
                accessKey: RandomText.alphanumeric(Self.accessKeyLength), createdAt: date, updatedAt: date
            ),
            passwordHash: try await hasher.hash(password),
            sealedSecretKey: try cipher.seal(secretKey, userId: id)
        )
        try await repository.insert(stored)
        return UserWithSecret(user: stored.user, secretKey: secretKey)
    }

    /// The same error for an unknown username and a wrong password, so neither can be told apart.
    /// Only with the right password does a disabled or deleted account say so.
    public func verifyPassword(username: String, password: String) async throws -> User {
        let invalid = DomainError(.unauthenticated, "invalid username or password")
        var found: (user: StoredUser, isDeleted: Bool)?
        for spelling in Self.storedSpellings(of: username) where found == nil {
            found = try await repository.findIncludingDeleted(username: spelling)
        }
        guard let found else {
            try await hasher.verifyDecoy(password)
            throw invalid
        }
        guard try await hasher.verify(password, hash: found.user.passwordHash) else { throw invalid }
        if found.isDeleted { throw DomainError(.permissionDenied, "user \(username.quotedForMessage) has been deleted") }
        guard found.user.user.status == .enabled else { throw DomainError(.permissionDenied, "user \(username.quotedForMessage) is disabled") }
        return found.user.user
    }

    public func user(id: String) async throws -> User {
        try await stored(id: id).user
    }

    public func user(username: String) async throws -> User {
        for spelling in Self.storedSpellings(of: username) {
            if let stored = try await repository.find(username: spelling) { return stored.user }
        }
        throw DomainError.notFound("no user named \(username.quotedForMessage)")
    }

    public func user(accessKey: String) async throws -> User {
        guard let stored = try await repository.find(accessKey: accessKey) else {
            throw DomainError.notFound("no user has this access key")
        }
        return stored.user
    }

    public func update(id: String, changes: UserChanges) async throws {
        // A user that is not there is "not found" before its changes are checked.
        _ = try await stored(id: id)
        var violations = Violations()
        if let avatar = changes.avatar, avatar.unicodeScalars.count > Self.avatarMaxLength {
            violations.add("avatar", "avatar must be at most \(Self.avatarMaxLength) characters long")
        }
        if let password = changes.password { Self.checkPassword(password, property: "password", into: &violations) }
        if let accessKey = changes.accessKey, !Self.isKey(accessKey, length: Self.accessKeyLength) {
            violations.add("accessKey", "accessKey must be \(Self.accessKeyLength) characters of [A-Za-z0-9_]")
        }
        if let secretKey = changes.secretKey, !Self.isKey(secretKey, length: Self.secretKeyLength) {
            violations.add("secretKey", "secretKey must be \(Self.secretKeyLength) characters of [A-Za-z0-9_]")
        }
        try violations.throwIfAny()

        // Hashed first: the change's time is taken as close to its write as it can be.
        var passwordHash: String?
        if let password = changes.password { passwordHash = try await hasher.hash(password) }
        let date = now()
        var fields = StoredUserFields(updatedAt: date)
        fields.avatar = changes.avatar
        fields.passwordHash = passwordHash
        fields.status = changes.status
        fields.role = changes.role
        fields.accessKey = changes.accessKey
        if let secretKey = changes.secretKey { fields.sealedSecretKey = try cipher.seal(secretKey, userId: id) }
        let written = try await repository.update(id: id) { [fields] stored in
            // Decided from the row as the write finds it: an edit made meanwhile by another admin
            // (a status, a role, a new key pair) is what this one is compared with.
            let before = stored.user
            // A token carries the role and status it was issued with: once they change, it must go.
            let disables = changes.status == .disabled && before.status != .disabled
            let changesRole = changes.role != nil && changes.role != before.role
            // A new password ends every session opened with the old one (the caller gets a new token).
            let changesPassword = changes.password != nil
            var revocation = disables || changesRole || changesPassword ? userRevocation(id, at: date) : nil
            // Signing keys gateways keep were derived from the old pair: a new access key or a new
            // secret key voids them.
            let changesKeys = (changes.accessKey != nil && changes.accessKey != before.accessKey) || changes.secretKey != nil
            if revocation == nil, changesKeys {
                revocation = accessKeyRevocation(before.accessKey, at: date)
            }
            return UserUpdate(fields: fields, revocation: revocation)
        }
        guard written != nil else { throw DomainError.notFound("no user with id \(id.quotedForMessage)") }
    }

    public func rotateKeys(id: String) async throws -> UserWithSecret {
        let secretKey = RandomText.alphanumeric(Self.secretKeyLength)
        var fields = StoredUserFields(updatedAt: now())
        let accessKey = RandomText.alphanumeric(Self.accessKeyLength)
        fields.accessKey = accessKey
        fields.sealedSecretKey = try cipher.seal(secretKey, userId: id)
        // Signing keys a gateway keeps for the access key replaced must go with it.
        let written = try await repository.update(id: id) { [fields] stored in
            UserUpdate(fields: fields, revocation: accessKeyRevocation(stored.user.accessKey, at: fields.updatedAt))
        }
        guard var user = written?.user else { throw DomainError.notFound("no user with id \(id.quotedForMessage)") }
        user.accessKey = accessKey
        user.updatedAt = fields.updatedAt
        return UserWithSecret(user: user, secretKey: secretKey)
    }

    public func delete(id: String) async throws {
        let date = now()
        guard try await repository.softDelete(id: id, at: date, revoking: userRevocation(id, at: date)) else {
            throw DomainError.notFound("no user with id \(id.quotedForMessage)")
        }
    }

    public func list(current: Int?, pageSize: Int?) async throws -> Page<User> {
        let page = try PageRequest.check(current: current, pageSize: pageSize)
        let (users, total) = try await repository.list(offset: page.offset, limit: page.pageSize)
        return Page(items: users.map(\.user), current: page.current, pageSize: page.pageSize, total: total)
    }

    public func all() async throws -> [User] {
        try await repository.all().map(\.user)
    }

    public func count() async throws -> Int {
        try await repository.count()
    }

    // MARK: - Revocations

    public func revoke(_ kind: Revocation.Kind, subject: String, notBefore: Date?, expiresAt: Date) async throws {
        var violations = Violations()
        if subject.isEmpty || subject.count > 128 { violations.add("subject", "subject must be 1 to 128 characters long") }
        try violations.throwIfAny()
        let date = now()
        try await repository.insert(Revocation(kind: kind, subject: subject, notBefore: notBefore ?? date, expiresAt: expiresAt, createdAt: date))
        try await repository.deleteRevocations(expiredBefore: date)
    }

    /// The most revocations one page gives.
    public static let revocationPageSize = 2_000

    /// Revocations recorded since `since` and still in force, with the time of this answer. With a
    /// `limit`, a page at a time in the order they were stored (`after`: the id of the last one of
    /// the previous page), and whether more follow; without one (0: gateways from before pages,
    /// which would not ask for the rest), all of them.
    public func revocations(since: Date, after: String = "", limit: Int = 0) async throws -> (revocations: [Revocation], serverTime: Date, more: Bool) {
        let date = now()
        guard limit > 0 else {
            return (try await repository.revocations(since: since, after: after, limit: nil, now: date), date, false)
        }
        let limit = min(limit, Self.revocationPageSize)
        let page = try await repository.revocations(since: since, after: after, limit: limit + 1, now: date)
        return (Array(page.prefix(limit)), date, page.count > limit)
    }

    /// Signing keys derived from `accessKey` live at most as long as a signature may (7 days).
    private func accessKeyRevocation(_ accessKey: String, at date: Date) -> Revocation {
        Revocation(kind: .accessKey, subject: accessKey, notBefore: date, expiresAt: date.addingTimeInterval(8 * 86_400), createdAt: date)
    }

    private func userRevocation(_ id: String, at date: Date) -> Revocation {
        Revocation(kind: .user, subject: id, notBefore: date, expiresAt: date.addingTimeInterval(Self.userRevocationLifetime), createdAt: date)
    }

    // MARK: - First run

    /// Creates the first admin when there are no users yet. Without a configured password one is
    /// generated; the caller shows it once. Returns nil when nothing was created.
    public func bootstrapAdmin(username: String?, password: String?) async throws -> (user: User, generatedPassword: String?)? {
        guard try await repository.count() == 0 else { return nil }
        do {
            return try await createAdmin(username: username, password: password)
        } catch let error as DomainError where error.kind == .alreadyExists {
            // Another replica starting at the same moment created it first.
            return nil
        }
    }

    /// Creates the admin unless the username exists (then returns nil).
    public func createAdmin(username: String?, password: String?) async throws -> (user: User, generatedPassword: String?)? {
        let username = username ?? "admin"
        if try await isTaken(username) { return nil }
        let generated = password == nil ? RandomText.alphanumeric(20) : nil
        let created = try await register(username: username, password: password ?? generated ?? "", role: .admin)
        return (created.user, generated)
    }

    // MARK: - Rules

    private func stored(id: String) async throws -> StoredUser {
        guard let stored = try await repository.find(id: id) else {
            throw DomainError.notFound("no user with id \(id.quotedForMessage)")
        }
        return stored
    }

    static func checkUsername(_ username: String, into violations: inout Violations) {
        violations.checkUsername("username", username)
    }

    static func checkPassword(_ password: String, property: String, into violations: inout Violations) {
        violations.checkPassword(property, password)
    }

    static func isKey(_ text: String, length: Int) -> Bool {
        text.utf8.count == length && text.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x5F
        }
    }
}
