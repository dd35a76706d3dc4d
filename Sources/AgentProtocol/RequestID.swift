import JSON

/// A request's `id`, echoed verbatim in every event for it: a string or an integer.
public enum RequestID: Sendable, Hashable, CustomStringConvertible {
    case string(String)
    case int(Int64)

    /// Reads an `id` member; `nil` when the value is neither a string nor an integer.
    public init?(_ value: JSONValue) {
        switch value {
        case .string(let string): self = .string(string)
        case .int(let int): self = .int(int)
        default: return nil
        }
    }

    public var json: JSONValue {
        switch self {
        case .string(let string): .string(string)
        case .int(let int): .int(int)
        }
    }

    public var description: String {
        switch self {
        case .string(let string): string
        case .int(let int): String(int)
        }
    }
}
