import FluentKit
import Logging
import NIOCore
import SQLKit

/// A pool handle whose Fluent model operations and SQL are measured like `InstrumentedSQLDatabase`'s
/// statements: `SELECT users` for a model query, `TRANSACTION` around a transaction. It stays an
/// `SQLDatabase`, as the drivers' handles are, for the repositories that mix models and SQL.
struct InstrumentedFluentDatabase: FluentKit.Database, SQLDatabase {
    let base: any FluentKit.Database
    let sql: any SQLDatabase
    let instrumentation: DatabaseInstrumentation

    /// nil when `base` is not also an `SQLDatabase` (never, for the two drivers configured).
    init?(base: any FluentKit.Database, instrumentation: DatabaseInstrumentation) {
        guard let sql = base as? any SQLDatabase else { return nil }
        self.base = base
        self.sql = sql
        self.instrumentation = instrumentation
    }

    var context: DatabaseContext { base.context }
    var inTransaction: Bool { base.inTransaction }

    func execute(query: DatabaseQuery, onOutput: @escaping @Sendable (any DatabaseOutput) -> Void) -> EventLoopFuture<Void> {
        instrumentation.measure(operation: Self.operation(of: query.action), table: query.schema, holdsConnection: !inTransaction) {
            base.execute(query: query, onOutput: onOutput)
        }
    }

    func execute(schema: DatabaseSchema) -> EventLoopFuture<Void> {
        base.execute(schema: schema)
    }

    func execute(enum: DatabaseEnum) -> EventLoopFuture<Void> {
        base.execute(enum: `enum`)
    }

    func transaction<T>(_ closure: @escaping @Sendable (any FluentKit.Database) -> EventLoopFuture<T>) -> EventLoopFuture<T> {
        guard !inTransaction else { return closure(self) }
        return instrumentation.measure(operation: "TRANSACTION", table: "", holdsConnection: true) {
            base.transaction { [instrumentation] database in
                closure(InstrumentedFluentDatabase(base: database, instrumentation: instrumentation) ?? database)
            }
        }
    }

    func withConnection<T>(_ closure: @escaping @Sendable (any FluentKit.Database) -> EventLoopFuture<T>) -> EventLoopFuture<T> {
        base.withConnection { [instrumentation] database in
            closure(InstrumentedFluentDatabase(base: database, instrumentation: instrumentation) ?? database)
        }
    }

    static func operation(of action: DatabaseQuery.Action) -> String {
        switch action {
        case .create: "INSERT"
        case .read, .aggregate: "SELECT"
        case .update: "UPDATE"
        case .delete: "DELETE"
        case .custom: "OTHER"
        }
    }

    // SQLDatabase: statements go through `InstrumentedSQLDatabase`'s measuring.

    var dialect: any SQLDialect { sql.dialect }
    var version: (any SQLDatabaseReportedVersion)? { sql.version }
    var queryLogLevel: Logger.Level? { sql.queryLogLevel }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) -> EventLoopFuture<Void> {
        sql.execute(sql: query, onRow)
    }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) async throws {
        try await measuredSQL.execute(sql: query, onRow)
    }

    func withSession<R>(_ closure: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await measuredSQL.withSession(closure)
    }

    private var measuredSQL: InstrumentedSQLDatabase {
        InstrumentedSQLDatabase(base: sql, instrumentation: instrumentation, holdsConnection: !inTransaction)
    }
}
