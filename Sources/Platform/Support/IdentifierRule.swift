/// What can name a stored thing: identifiers the services make are 26 characters
/// (`SortableID`); nothing far longer, and nothing with control characters, names anything, so
/// it is answered "not found" without a lookup (PostgreSQL refuses a NUL in text outright).
public enum IdentifierRule {
    public static let maxLength = 64

    /// Whether `value` could be an identifier: 1–64 bytes, no control characters.
    public static func isPlausible(_ value: String) -> Bool {
        !value.isEmpty && value.utf8.count <= maxLength && !value.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F })
    }
}
