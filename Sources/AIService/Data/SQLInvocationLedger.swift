import FluentKit
import Foundation
import Platform
import SQLKit

/// `InvocationLedger` on the AI database: the usage records and quota settlements of a batch of
/// invocations in one transaction — one reservation claim, one upsert per user, one multi-row
/// insert. If the batch fails (other than by the database being unavailable), each booking is
/// retried on its own, so one bad booking cannot keep the others out.
public struct SQLInvocationLedger: InvocationLedger {
    private let database: ServiceDatabase
    private let quotas: SQLQuotaStore

    public init(database: ServiceDatabase, quotas: SQLQuotaStore) {
        self.database = database
        self.quotas = quotas
    }

    public var booksInline: Bool { database.writesInline }

    public func book(_ bookings: [InvocationBooking]) async -> [(any Error)?] {
        do {
            try await bookTogether(bookings)
            return bookings.map { _ in nil }
        } catch {
            // A database that cannot serve fails every booking alike; trying each alone would
            // wait out the lock once per booking.
            guard bookings.count > 1, !DatabaseFailure.isUnavailable(error) else { return bookings.map { _ in error } }
            var errors: [(any Error)?] = []
            for booking in bookings {
                do {
                    try await bookTogether([booking])
                    errors.append(nil)
                } catch {
                    errors.append(error)
                }
            }
            return errors
        }
    }

    private func bookTogether(_ bookings: [InvocationBooking]) async throws {
        let quotas = self.quotas
        let now = bookings.map(\.record.createdAt).max() ?? Date()
        try await database.writeTransaction { sql in
            try await quotas.settle(bookings.compactMap(\.settlement), now: now, on: sql)
            try await SQLUsageRepository.insert(bookings.map(\.record), on: sql)
        }
    }
}
