import CoreMetrics
import Foundation
import Logging
import NIOCore
import SQLKit
import Synchronization
import Tracing

/// How a service's database reports its statements: a duration histogram by statement kind and
/// table (`db_client_operation_duration_seconds`) and, when tracing, a client span per statement
/// named `SELECT users` with OpenTelemetry's database attributes. Never a value: the statement's
/// kind and table are read from its text, whose values are all bound parameters.
public struct DatabaseInstrumentation: Sendable {
    let telemetry: Telemetry
    let system: String
    let namespace: String
    /// Operations holding a connection now, for the connection gauges.
    let usage = ConnectionUsage()
    private let durations: MetricHandles<StatementLabels, CoreMetrics.Timer>
    private let errors: MetricHandles<String, Counter>
    private let tables = BoundedLabelValues(limit: 100)

    public init(telemetry: Telemetry, location: DatabaseLocation) {
        self.telemetry = telemetry
        switch location {
        case .sqlite(let path):
            system = "sqlite"
            namespace = String(path.split(separator: "/").last ?? "")
        case .postgres(let url):
            system = "postgresql"
            namespace = String(url.split(separator: "/").last?.split(separator: "?").first ?? "")
        }
        let factory = telemetry.metrics
        let system = self.system
        durations = MetricHandles { labels in
            CoreMetrics.Timer(
                label: "db_client_operation_duration_seconds",
                dimensions: [("db_system_name", system), ("db_operation_name", labels.operation), ("db_collection_name", labels.table)],
                factory: factory
            )
        }
        errors = MetricHandles { operation in
            Counter(
                label: "db_client_operation_errors_total",
                dimensions: [("db_system_name", system), ("db_operation_name", operation)],
                factory: factory
            )
        }
    }

    /// Runs one statement (or transaction, `operation` "TRANSACTION") under its span and timer.
    /// `holdsConnection` is false for a statement whose connection is counted already (one in a
    /// transaction that Fluent runs).
    func measure<T>(operation: String, table: String, holdsConnection: Bool = true, _ body: () async throws -> T) async throws -> T {
        let started = ContinuousClock.now
        let table = table.isEmpty ? "" : tables.value(table)
        defer { durations[StatementLabels(operation: operation, table: table)].recordSince(started) }
        func run() async throws -> T {
            guard telemetry.isTracing else { return try await body() }
            return try await traced(operation: operation, table: table, body)
        }
        if holdsConnection { usage.began() }
        defer { if holdsConnection { usage.ended() } }
        do {
            return try await run()
        } catch {
            errors[operation].increment()
            throw error
        }
    }

    /// One statement, labelled by what the driver serialized (`DescribedStatement`): its kind and
    /// table are known once it has run, and the span is named then.
    func measureStatement<T>(
        _ statement: StatementDescription, holdsConnection: Bool, _ body: () async throws -> T
    ) async throws -> T {
        let started = ContinuousClock.now
        if holdsConnection { usage.began() }
        defer { if holdsConnection { usage.ended() } }
        let span = telemetry.isTracing ? telemetry.tracer.startSpan("statement", ofKind: .client) : nil
        func labels() -> StatementLabels {
            let (operation, table) = statement.labels
            return StatementLabels(operation: operation, table: table.isEmpty ? "" : tables.value(table))
        }
        do {
            let result: T
            if let span {
                result = try await InstrumentationContext.$current.withValue(span.context) { try await body() }
            } else {
                result = try await body()
            }
            let labels = labels()
            durations[labels].recordSince(started)
            if let span { name(span, labels) }
            return result
        } catch {
            let labels = labels()
            durations[labels].recordSince(started)
            errors[labels.operation].increment()
            if let span {
                span.attributes["error.type"] = String(describing: type(of: error))
                span.setStatus(SpanStatus(code: .error))
                name(span, labels)
            }
            throw error
        }
    }

    /// Names the span after its statement and ends it.
    private func name(_ span: any Span, _ labels: StatementLabels) {
        span.operationName = labels.table.isEmpty ? labels.operation : "\(labels.operation) \(labels.table)"
        setAttributes(of: span, operation: labels.operation, table: labels.table)
        span.end()
    }

    /// `measure` for FluentKit's future-returning calls. `holdsConnection` is false for calls
    /// made inside a measured transaction, whose connection is already counted.
    func measure<T>(
        operation: String, table: String, holdsConnection: Bool, _ body: () -> EventLoopFuture<T>
    ) -> EventLoopFuture<T> {
        let started = ContinuousClock.now
        let table = table.isEmpty ? "" : tables.value(table)
        let span = telemetry.isTracing ? startSpan(operation: operation, table: table) : nil
        if holdsConnection { usage.began() }
        let future = InstrumentationContext.$current.withValue(span?.context ?? InstrumentationContext.current) { body() }
        future.whenComplete { [durations, errors, usage] result in
            if holdsConnection { usage.ended() }
            durations[StatementLabels(operation: operation, table: table)].recordSince(started)
            if case .failure(let error) = result {
                errors[operation].increment()
                span?.attributes["error.type"] = String(describing: type(of: error))
                span?.setStatus(SpanStatus(code: .error))
            }
            span?.end()
        }
        return future
    }

    private func traced<T>(operation: String, table: String, _ body: () async throws -> T) async throws -> T {
        let span = startSpan(operation: operation, table: table)
        defer { span.end() }
        do {
            return try await InstrumentationContext.$current.withValue(span.context) { try await body() }
        } catch {
            span.attributes["error.type"] = String(describing: type(of: error))
            span.setStatus(SpanStatus(code: .error))
            throw error
        }
    }

    private func startSpan(operation: String, table: String) -> any Span {
        let span = telemetry.tracer.startSpan(table.isEmpty ? operation : "\(operation) \(table)", ofKind: .client)
        setAttributes(of: span, operation: operation, table: table)
        return span
    }

    /// In one read and one write of the span's attributes: each is a copy of them under a lock.
    private func setAttributes(of span: any Span, operation: String, table: String) {
        span.updateAttributes { attributes in
            attributes["db.system.name"] = system
            attributes["db.operation.name"] = operation
            if !table.isEmpty { attributes["db.collection.name"] = table }
            if !namespace.isEmpty { attributes["db.namespace"] = namespace }
        }
    }

    /// Records each group commit's size in `aisaas_db_write_batch_size{writer}`.
    func batchObserver(writer: String) -> @Sendable (Int) -> Void {
        let histogram = Recorder(label: "aisaas_db_write_batch_size", dimensions: [("writer", writer)], factory: telemetry.metrics)
        return { histogram.record($0) }
    }

    private static let commonKinds = ["SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE"]

    /// The statement kind (`SELECT`, `INSERT`, …) and the table it names first. Reads words from
    /// the start and stops at the table: no copy of the statement, which may be long.
    static func describe(_ sql: some StringProtocol) -> (operation: String, table: String) {
        var words = SQLWords(Substring(sql).utf8)
        guard let first = words.next() else { return ("UNKNOWN", "") }
        // The common kinds without an upper-cased copy of the word.
        let known = commonKinds.first { SQLWords.word(first, is: $0) }
        let operation = known ?? first.uppercased()
        let marker: String? = switch operation {
        case "SELECT", "DELETE": "FROM"
        case "INSERT", "REPLACE": "INTO"
        case "UPDATE": ""
        default: nil
        }
        guard let marker else { return (operation.count <= 16 ? operation : "OTHER", "") }
        var afterMarker = marker.isEmpty
        // A SELECT's columns come before FROM: at most this many words are read.
        for _ in 0..<512 {
            guard let word = words.next() else { break }
            if afterMarker {
                if SQLWords.word(word, is: "OR") { _ = words.next(); continue }  // UPDATE OR REPLACE t
                let isQuote: (Character) -> Bool = { $0 == "\"" || $0 == "`" || $0 == "[" || $0 == "]" }
                var name = word
                while let first = name.first, isQuote(first) { name.removeFirst() }
                while let last = name.last, isQuote(last) { name.removeLast() }
                return (operation, String(name))
            }
            if SQLWords.word(word, is: marker) { afterMarker = true }
        }
        return (operation, "")
    }
}

/// The words of an SQL statement, split at spaces, new lines, tabs, parentheses and commas.
struct SQLWords: IteratorProtocol {
    private let bytes: Substring.UTF8View
    private var index: Substring.UTF8View.Index

    init(_ bytes: Substring.UTF8View) {
        self.bytes = bytes
        self.index = bytes.startIndex
    }

    private static func separates(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\t")
            || byte == UInt8(ascii: "(") || byte == UInt8(ascii: ",") || byte == UInt8(ascii: ")")
    }

    /// Whether `word` is `keyword` (upper case ASCII), in any case.
    static func word(_ word: Substring, is keyword: String) -> Bool {
        guard word.utf8.count == keyword.utf8.count else { return false }
        return zip(word.utf8, keyword.utf8).allSatisfy { byte, upper in
            byte == upper || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") && byte - 32 == upper)
        }
    }

    mutating func next() -> Substring? {
        while index < bytes.endIndex, Self.separates(bytes[index]) { bytes.formIndex(after: &index) }
        guard index < bytes.endIndex else { return nil }
        let start = index
        while index < bytes.endIndex, !Self.separates(bytes[index]) { bytes.formIndex(after: &index) }
        return Substring(bytes[start..<index])
    }
}

/// What a statement turned out to be, read from the text the driver serialized.
final class StatementDescription: Sendable {
    private let described = Mutex<(operation: String, table: String)?>(nil)

    func record(_ sql: Substring) {
        let labels = DatabaseInstrumentation.describe(sql)
        described.withLock { $0 = labels }
    }

    /// `UNKNOWN` for a statement that failed before the driver serialized it.
    var labels: (operation: String, table: String) {
        described.withLock { $0 } ?? ("UNKNOWN", "")
    }
}

/// A statement that notes its own text as the driver serializes it, so that it is serialized
/// once, by the driver, and still labelled (the labels need the text; values are bound apart).
struct DescribedStatement: SQLExpression {
    let base: any SQLExpression
    let description: StatementDescription

    func serialize(to serializer: inout SQLSerializer) {
        let start = serializer.sql.endIndex
        base.serialize(to: &serializer)
        description.record(serializer.sql[start...])
    }
}

struct StatementLabels: Hashable, Sendable {
    var operation: String
    var table: String
}

/// A connection whose statements are measured by `DatabaseInstrumentation`.
struct InstrumentedSQLDatabase: SQLDatabase {
    let base: any SQLDatabase
    let instrumentation: DatabaseInstrumentation
    var holdsConnection = true

    var logger: Logger { base.logger }
    var eventLoop: any EventLoop { base.eventLoop }
    var version: (any SQLDatabaseReportedVersion)? { base.version }
    var dialect: any SQLDialect { base.dialect }
    var queryLogLevel: Logger.Level? { base.queryLogLevel }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> ()) -> EventLoopFuture<Void> {
        base.execute(sql: query, onRow)
    }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> ()) async throws {
        let statement = StatementDescription()
        try await instrumentation.measureStatement(statement, holdsConnection: holdsConnection) {
            try await base.execute(sql: DescribedStatement(base: query, description: statement), onRow)
        }
    }

    func withSession<R>(_ closure: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await base.withSession { session in
            try await closure(InstrumentedSQLDatabase(base: session, instrumentation: instrumentation, holdsConnection: holdsConnection))
        }
    }
}
