import FluentKit

/// The AI database's schema, in order. Never edit a shipped migration: add a new one.
public enum AIMigrations {
    public static var all: [any Migration] { [] }
}
