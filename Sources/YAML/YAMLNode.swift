/// A position in a YAML document, 1-based, columns counted in characters (as libyaml does).
public struct Mark: Sendable, Hashable, CustomStringConvertible {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public var description: String { "\(line):\(column)" }
}

/// How a scalar was written. Quoted scalars are always strings; plain ones are resolved.
public enum ScalarStyle: Sendable, Hashable {
    case plain, singleQuoted, doubleQuoted, literal, folded
}

/// A scalar as written, with enough of its presentation to resolve it like YAML 1.2's core schema.
public struct Scalar: Sendable, Hashable {
    public var text: String
    public var style: ScalarStyle
    /// The explicit tag, expanded (`!!str` becomes `tag:yaml.org,2002:str`); nil when untagged.
    public var tag: String?

    public init(_ text: String, style: ScalarStyle = .plain, tag: String? = nil) {
        self.text = text
        self.style = style
        self.tag = tag
    }
}

/// One key/value pair of a mapping, in document order.
public struct MappingEntry: Sendable, Hashable {
    public var key: YAMLNode
    public var value: YAMLNode

    public init(key: YAMLNode, value: YAMLNode) {
        self.key = key
        self.value = value
    }
}

/// A node of a YAML document with the position where it starts.
public struct YAMLNode: Sendable, Hashable {
    public enum Content: Sendable, Hashable {
        case scalar(Scalar)
        case sequence([YAMLNode])
        case mapping([MappingEntry])
    }

    public var content: Content
    public var mark: Mark

    public init(_ content: Content, mark: Mark) {
        self.content = content
        self.mark = mark
    }

    public var scalar: Scalar? {
        if case .scalar(let scalar) = content { return scalar }
        return nil
    }

    public var sequence: [YAMLNode]? {
        if case .sequence(let items) = content { return items }
        return nil
    }

    public var mapping: [MappingEntry]? {
        if case .mapping(let entries) = content { return entries }
        return nil
    }

    /// The value of the first entry whose key is the plain or quoted string `key`.
    public subscript(key: String) -> YAMLNode? {
        mapping?.first { $0.key.scalar?.text == key }?.value
    }

    /// What kind of value this is, for messages ("expected a number, got a mapping").
    public var kindName: String {
        switch content {
        case .sequence: "a list"
        case .mapping: "a mapping"
        case .scalar:
            switch resolved {
            case .null: "null"
            case .bool: "a boolean"
            case .int, .double: "a number"
            case .string: "a string"
            }
        }
    }

    /// True when both nodes hold the same content, wherever they were written.
    public func hasSameContent(as other: YAMLNode) -> Bool {
        switch (content, other.content) {
        case (.scalar(let a), .scalar(let b)): a.text == b.text && a.tag == b.tag
        case (.sequence(let a), .sequence(let b)):
            a.count == b.count && zip(a, b).allSatisfy { $0.hasSameContent(as: $1) }
        case (.mapping(let a), .mapping(let b)):
            a.count == b.count
                && zip(a, b).allSatisfy { $0.key.hasSameContent(as: $1.key) && $0.value.hasSameContent(as: $1.value) }
        default: false
        }
    }
}

/// A scalar's value under YAML 1.2's core schema.
public enum ResolvedScalar: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
}

extension YAMLNode {
    /// The scalar's value: quoted, block and `!!str`-tagged scalars are strings, plain ones are
    /// resolved (`~`/`null`, `true`/`false`, decimal/`0x`/`0o` integers, floats). A plain
    /// `0660` is the integer 660 — an octal mode has to be quoted or written `0o660`.
    /// Collections resolve to `.string("")`; check `scalar` first.
    public var resolved: ResolvedScalar {
        guard let scalar else { return .string("") }
        let text = scalar.text
        switch scalar.tag {
        case "tag:yaml.org,2002:str"?: return .string(text)
        case "tag:yaml.org,2002:null"?: return .null
        case "tag:yaml.org,2002:bool"?: return Self.bool(text).map { .bool($0) } ?? .string(text)
        case "tag:yaml.org,2002:int"?: return Self.int(text).map { .int($0) } ?? .string(text)
        case "tag:yaml.org,2002:float"?:
            return Self.double(text).map { .double($0) } ?? Self.int(text).map { .double(Double($0)) } ?? .string(text)
        case nil: break
        default: return .string(text)
        }
        guard scalar.style == .plain else { return .string(text) }
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        default: break
        }
        if let bool = Self.bool(text) { return .bool(bool) }
        if let int = Self.int(text) { return .int(int) }
        if let double = Self.double(text) { return .double(double) }
        return .string(text)
    }

    private static func bool(_ text: String) -> Bool? {
        switch text {
        case "true", "True", "TRUE": true
        case "false", "False", "FALSE": false
        default: nil
        }
    }

    private static func int(_ text: String) -> Int64? {
        if text.hasPrefix("0x") { return Int64(text.dropFirst(2), radix: 16) }
        if text.hasPrefix("0o") { return Int64(text.dropFirst(2), radix: 8) }
        let digits = text.first == "-" || text.first == "+" ? text.dropFirst() : Substring(text)
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int64(text)
    }

    private static func double(_ text: String) -> Double? {
        switch text {
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .infinity
        case "-.inf", "-.Inf", "-.INF": return -.infinity
        case ".nan", ".NaN", ".NAN": return .nan
        default: break
        }
        // Core schema floats: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
        let allowed = text.allSatisfy { $0.isASCII && ($0.isNumber || "+-.eE".contains($0)) }
        guard allowed, text.contains(where: \.isNumber) else { return nil }
        return Double(text)
    }
}
