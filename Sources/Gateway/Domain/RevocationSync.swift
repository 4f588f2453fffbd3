import AISaaSProtos
import GRPCCore
import Foundation
import Logging
import Platform
import ServiceLifecycle

/// Keeps this replica's `RevocationList` in step with the user service, where every replica
/// records its revocations: polls every `interval`, and on demand after a change it caused.
public actor RevocationSync {
    private let users: any Grpc_User_V1_UserService.ClientProtocol
    private let revocations: RevocationList
    private var since: Double = 0
    /// Entries are asked for again this far back, in case service replicas' clocks disagree or a
    /// change took long to commit after its time was taken (SQLite waits up to 10 s for a lock).
    private static let overlapMilliseconds = 30_000.0

    /// Deadline of one poll: short, so that a poll stuck on an unreachable instance does not
    /// hold up the next one.
    private let callTimeout: Duration

    /// Entries asked for per call (at most the user service's page size, 2,000).
    private let pageSize: Int32

    public init(
        users: any Grpc_User_V1_UserService.ClientProtocol, revocations: RevocationList, callTimeout: Duration = .seconds(2), pageSize: Int32 = 2_000
    ) {
        self.users = users
        self.revocations = revocations
        self.callTimeout = callTimeout
        self.pageSize = pageSize
    }

    /// Takes in every revocation since the last refresh, page by page; marks the list synced
    /// once the last page is in.
    public func refresh() async throws {
        var options = CallOptions.defaults
        options.timeout = callTimeout
        let since = since
        var after = ""
        var firstServerTime: Double?
        while true {
            let sent = Date()
            let answer = try await users.listRevocations(.with {
                $0.since = since
                $0.after = after
                $0.limit = pageSize
            }, options: options)
            let received = Date()
            // The user service's clock, as seen from here: revocations carry its times, so tokens
            // are stamped in its time too (a gateway clock ahead of it would let a token issued
            // just before a revocation escape it).
            revocations.recordClockSample(
                offset: answer.serverTime / 1000 - (sent.timeIntervalSince1970 + received.timeIntervalSince1970) / 2,
                roundTrip: received.timeIntervalSince(sent)
            )
            firstServerTime = firstServerTime ?? answer.serverTime
            revocations.add(answer.results.map(Self.entry))
            guard answer.more, let last = answer.results.last?.id, last > after else { break }
            after = last
        }
        revocations.markSynced()
        // From the first page's time: what was recorded while the pages were read is read again.
        self.since = max(0, (firstServerTime ?? since) - Self.overlapMilliseconds)
    }

    private static func entry(_ entry: Grpc_User_V1_Revocation) -> RevocationList.Entry {
        let notBefore = Date(millisecondsSince1970: entry.notBefore), expiresAt = Date(millisecondsSince1970: entry.expiresAt)
        switch entry.kind {
        case .user: return .user(id: entry.subject, notBefore: notBefore, expiresAt: expiresAt, securityStamp: entry.securityStamp)
        case .apiKey: return .apiKey(id: entry.subject, expiresAt: expiresAt)
        case .accessKey: return .accessKey(key: entry.subject, notBefore: notBefore, expiresAt: expiresAt)
        default: return .token(id: entry.subject, expiresAt: expiresAt)
        }
    }

    /// After a change that revoked tokens: takes it in now if the user service answers, else at
    /// the next poll. The change itself is done, so its answer does not depend on this.
    public func refreshAfterChange() async {
        do {
            try await refresh()
        } catch {
            Logger(label: "gateway").warning("revocation refresh failed; the next poll will retry", metadata: ["error": "\(error)"])
        }
    }
}

/// Runs `RevocationSync.refresh` every `interval` until shutdown.
public struct RevocationSyncService: Service {
    let sync: RevocationSync
    let revocations: RevocationList
    let interval: Duration
    let logger: Logger

    public func run() async throws {
        // Ends promptly on shutdown: cancellation interrupts the sleep.
        try? await cancelWhenGracefulShutdown {
            var failing = false
            while !Task.isCancelled {
                do {
                    try await sync.refresh()
                    if failing { logger.notice("revocation sync recovered") }
                    failing = false
                } catch {
                    if !failing { logger.warning("revocation sync failed; retrying", metadata: ["error": "\(error)"]) }
                    failing = true
                }
                revocations.purge()
                try await Task.sleep(for: interval)
            }
        }
    }
}
