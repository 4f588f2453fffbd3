import Platform

/// Who is calling, from the request's `RequestScope`.
public struct Caller: Sendable, Equatable {
    public var userId: String
    public var isAdmin: Bool
    public var accessKey: String?
    /// The API key of an OpenAI-compatible call.
    public var apiKeyId: String?
    public var requestId: String
    /// When the caller gives up on this call (`RequestScope.callDeadline`).
    public var callDeadline: ContinuousClock.Instant?

    public init(
        userId: String, isAdmin: Bool = false, accessKey: String? = nil, apiKeyId: String? = nil, requestId: String = "",
        callDeadline: ContinuousClock.Instant? = nil
    ) {
        self.userId = userId
        self.isAdmin = isAdmin
        self.accessKey = accessKey
        self.apiKeyId = apiKeyId
        self.requestId = requestId
        self.callDeadline = callDeadline
    }

    /// Whether a call cancelled now was timed out by its caller rather than left by its client:
    /// the caller's deadline has come (give or take the time the call took to arrive and the
    /// caller's timer resolution).
    func timedOut(at now: ContinuousClock.Instant = .now) -> Bool {
        callDeadline.map { now >= $0 - .milliseconds(250) } ?? false
    }

    /// What the rate limit counts calls by: the API key or the access key that made them.
    var rateLimitSubject: String {
        if let apiKeyId { return "key:" + apiKeyId }
        return accessKey ?? "user:\(userId)"
    }

    /// The caller of the current request; `.unauthenticated` without a user id.
    public static func current() throws(DomainError) -> Caller {
        guard let scope = RequestScope.current, let userId = scope.userId, !userId.isEmpty else {
            throw DomainError(.unauthenticated, "this call needs a signed-in caller")
        }
        return Caller(
            userId: userId, isAdmin: scope.role == .admin, accessKey: scope.accessKey, apiKeyId: scope.apiKeyId, requestId: scope.requestId,
            callDeadline: scope.callDeadline
        )
    }
}
