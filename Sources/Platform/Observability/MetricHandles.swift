import CoreMetrics
import Synchronization

/// Metric handles made once per label set and kept: making a handle asks the factory (a lock and
/// a lookup of the series); recording on a kept one is an atomic add.
/// Inlinable, so that each caller's lookup is specialized for its key type: unspecialized, the
/// dictionary's hashing and the lock's closure go through generic metadata on every request.
public final class MetricHandles<Key: Hashable & Sendable, Handles: Sendable>: Sendable {
    @usableFromInline let cache = Mutex<[Key: Handles]>([:])
    @usableFromInline let make: @Sendable (Key) -> Handles

    public init(_ make: @escaping @Sendable (Key) -> Handles) {
        self.make = make
    }

    @inlinable
    public subscript(key: Key) -> Handles {
        cache.withLock { cache in
            if let handles = cache[key] { return handles }
            let handles = make(key)
            cache[key] = handles
            return handles
        }
    }
}

/// Keeps a label's values few: the first `limit` distinct values pass, later ones read `other`.
/// Labels whose values come from configuration (providers, models) stay bounded even if a
/// mistake lets a client's text through.
public final class BoundedLabelValues: Sendable {
    @usableFromInline let seen = Mutex<Set<String>>([])
    @usableFromInline let limit: Int

    public init(limit: Int = 200) {
        self.limit = limit
    }

    @inlinable
    public func value(_ candidate: String) -> String {
        guard !candidate.isEmpty else { return "none" }
        guard candidate.utf8.count <= 120 else { return "other" }
        return seen.withLock { seen in
            if seen.contains(candidate) { return candidate }
            guard seen.count < limit else { return "other" }
            seen.insert(candidate)
            return candidate
        }
    }
}

extension Duration {
    /// Seconds as a floating-point number, for span attributes and log fields.
    public var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    @inlinable
    public var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}

extension CoreMetrics.Timer {
    /// Records the time since `start`.
    @inlinable
    public func recordSince(_ start: ContinuousClock.Instant) {
        recordNanoseconds((ContinuousClock.now - start).nanoseconds)
    }
}
