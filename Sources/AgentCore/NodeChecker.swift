import JSON
import YAML

/// The entries of one YAML mapping, keyed by name, in document order.
struct Fields {
    struct Field {
        var name: String
        var key: YAMLNode
        var value: YAMLNode
    }

    var all: [Field]

    subscript(name: String) -> YAMLNode? { all.first { $0.name == name }?.value }
    func key(_ name: String) -> YAMLNode? { all.first { $0.name == name }?.key }
}

/// Reads typed values out of the YAML nodes of one file and records a diagnostic for every
/// value that does not fit, so that a file's problems are all reported in one pass. Every
/// reader returns nil after recording its diagnostic.
struct NodeChecker {
    let file: String
    private(set) var diagnostics: [Diagnostic] = []

    init(file: String) { self.file = file }

    mutating func error(at mark: Mark, _ message: String) {
        diagnostics.append(Diagnostic(file: file, line: mark.line, column: mark.column, message: message))
    }

    mutating func error(_ node: YAMLNode, _ message: String) { error(at: node.mark, message) }

    /// A mapping's entries; unknown keys are reported with a "did you mean" hint from `known`
    /// and left out.
    mutating func fields(of node: YAMLNode, path: String, known: [String]) -> Fields? {
        guard let entries = node.mapping else {
            let what = path.isEmpty ? "expected a mapping of settings" : "\(path): expected a mapping"
            error(node, "\(what), got \(node.kindName)")
            return nil
        }
        var fields: [Fields.Field] = []
        for entry in entries {
            guard case .string(let name) = entry.key.resolved, entry.key.scalar != nil else {
                error(entry.key, "keys must be strings, got \(entry.key.kindName)")
                continue
            }
            guard known.contains(name) else {
                let place = path.isEmpty ? "" : " in \(path)"
                let hint = Hints.nearest(to: name, among: known).map { " (did you mean '\($0)'?)" } ?? ""
                error(entry.key, "unknown key '\(name)'\(place)\(hint)")
                continue
            }
            fields.append(Fields.Field(name: name, key: entry.key, value: entry.value))
        }
        return Fields(all: fields)
    }

    mutating func string(_ node: YAMLNode, path: String) -> String? {
        guard node.scalar != nil, case .string(let text) = node.resolved else {
            error(node, "\(path): expected a string, got \(node.kindName)")
            return nil
        }
        return text
    }

    mutating func nonEmptyString(_ node: YAMLNode, path: String) -> String? {
        guard let text = string(node, path: path) else { return nil }
        guard !text.allSatisfy(\.isWhitespace) else {
            error(node, "\(path): must not be empty")
            return nil
        }
        return text
    }

    /// A string from a closed set of choices.
    mutating func choice(_ node: YAMLNode, path: String, from choices: [String]) -> String? {
        guard let text = string(node, path: path) else { return nil }
        guard choices.contains(text) else {
            let hint = Hints.nearest(to: text, among: choices).map { " (did you mean '\($0)'?)" } ?? ""
            error(node, "\(path): must be one of \(choices.joined(separator: ", ")), got '\(text)'\(hint)")
            return nil
        }
        return text
    }

    mutating func bool(_ node: YAMLNode, path: String) -> Bool? {
        guard case .bool(let value) = node.resolved, node.scalar != nil else {
            error(node, "\(path): expected true or false, got \(node.kindName)")
            return nil
        }
        return value
    }

    mutating func integer(_ node: YAMLNode, path: String, in range: ClosedRange<Int>) -> Int? {
        guard node.scalar != nil, case .int(let value) = node.resolved else {
            error(node, "\(path): expected an integer, got \(node.kindName)")
            return nil
        }
        guard let int = Int(exactly: value), range.contains(int) else {
            error(node, "\(path): must be between \(range.lowerBound) and \(range.upperBound), got \(value)")
            return nil
        }
        return int
    }

    mutating func duration(_ node: YAMLNode, path: String, hours: Bool = false) -> Duration? {
        guard node.scalar != nil, case .string(let text) = node.resolved else {
            let example = hours ? "30s, 2m or 24h" : "500ms, 30s or 2m"
            error(node, "\(path): expected a duration such as \(example), got \(node.kindName)")
            return nil
        }
        switch ConfigValues.duration(text, hours: hours) {
        case .success(let duration): return duration
        case .failure(let problem):
            error(node, "\(path): \(problem.message)")
            return nil
        }
    }

    /// A byte count: an integer, or a string with a unit (`64KiB`).
    mutating func byteSize(_ node: YAMLNode, path: String) -> Int? {
        let text: String
        switch node.resolved {
        case .int(let value) where node.scalar != nil: text = String(value)
        case .string(let value) where node.scalar != nil: text = value
        default:
            error(node, "\(path): expected a size such as 65536, 64KiB or 1MiB, got \(node.kindName)")
            return nil
        }
        switch ConfigValues.byteSize(text) {
        case .success(let size): return size
        case .failure(let problem):
            error(node, "\(path): \(problem.message)")
            return nil
        }
    }

    /// A mapping of names to strings, such as a tool's `env`.
    mutating func stringMap(_ node: YAMLNode, path: String) -> [(key: String, value: String, node: YAMLNode)]? {
        guard let entries = node.mapping else {
            error(node, "\(path): expected a mapping of names to strings, got \(node.kindName)")
            return nil
        }
        var result: [(key: String, value: String, node: YAMLNode)] = []
        for entry in entries {
            guard let key = string(entry.key, path: path) else { return nil }
            guard let value = string(entry.value, path: "\(path).\(key)") else { return nil }
            result.append((key, value, entry.key))
        }
        return result
    }

    /// The `ttl`, `max_messages` and `max_bytes` of a `sessions:` mapping, in an agent file or
    /// in agentd.yaml.
    mutating func sessionOverrides(_ fields: Fields) -> SessionOverrides {
        var overrides = SessionOverrides()
        if let node = fields["ttl"] { overrides.ttl = duration(node, path: "sessions.ttl", hours: true) }
        if let node = fields["max_messages"] {
            overrides.maxMessages = integer(node, path: "sessions.max_messages", in: 1...100_000)
        }
        if let node = fields["max_bytes"] {
            if let bytes = byteSize(node, path: "sessions.max_bytes") {
                if (1024...(1 << 30)).contains(bytes) {
                    overrides.maxBytes = bytes
                } else {
                    error(node, "sessions.max_bytes: must be between 1024 and 1073741824 bytes, got \(bytes)")
                }
            }
        }
        return overrides
    }

    /// A permission mode written as an octal string ("0660").
    mutating func octalMode(_ node: YAMLNode, path: String) -> UInt32? {
        guard node.scalar != nil, case .string(let text) = node.resolved else {
            let plain = node.scalar.map { " (a plain \($0.text) is read as a number; write it quoted: \"0660\")" } ?? ""
            error(node, "\(path): expected an octal mode string such as \"0660\", got \(node.kindName)\(plain)")
            return nil
        }
        switch ConfigValues.octalMode(text) {
        case .success(let mode): return mode
        case .failure(let problem):
            error(node, "\(path): \(problem.message)")
            return nil
        }
    }

    /// A list of strings; a single string is also accepted when `allowSingle` is true.
    mutating func strings(_ node: YAMLNode, path: String, allowSingle: Bool) -> [(String, YAMLNode)]? {
        if allowSingle, node.scalar != nil, case .string(let text) = node.resolved { return [(text, node)] }
        guard let items = node.sequence else {
            let expected = allowSingle ? "a string or a list of strings" : "a list of strings"
            error(node, "\(path): expected \(expected), got \(node.kindName)")
            return nil
        }
        var result: [(String, YAMLNode)] = []
        var valid = true
        for (index, item) in items.enumerated() {
            if let text = string(item, path: "\(path)[\(index)]") {
                result.append((text, item))
            } else {
                valid = false
            }
        }
        return valid ? result : nil
    }

    /// A group that must exist on this system.
    mutating func group(_ node: YAMLNode, path: String) -> String? {
        guard let name = nonEmptyString(node, path: path) else { return nil }
        guard Accounts.groupExists(name) else {
            error(node, "\(path): group '\(name)' does not exist")
            return nil
        }
        return name
    }

    mutating func user(_ node: YAMLNode, path: String) -> String? {
        guard let name = nonEmptyString(node, path: path) else { return nil }
        guard Accounts.userExists(name) else {
            error(node, "\(path): user '\(name)' does not exist")
            return nil
        }
        return name
    }

    /// The node as JSON (tool schemas, option values); reports what JSON cannot hold.
    mutating func json(_ node: YAMLNode, path: String) -> JSONValue? {
        switch node.content {
        case .scalar:
            switch node.resolved {
            case .null: return .null
            case .bool(let value): return .bool(value)
            case .int(let value): return .int(value)
            case .double(let value) where value.isFinite: return .double(value)
            case .double:
                error(node, "\(path): \(node.scalar?.text ?? "") cannot be written in JSON")
                return nil
            case .string(let text): return .string(text)
            }
        case .sequence(let items):
            var array: [JSONValue] = []
            for (index, item) in items.enumerated() {
                guard let value = json(item, path: "\(path)[\(index)]") else { return nil }
                array.append(value)
            }
            return .array(array)
        case .mapping(let entries):
            var object = JSONObject()
            for entry in entries {
                guard let key = entry.key.scalar?.text else {
                    error(entry.key, "\(path): keys must be strings, got \(entry.key.kindName)")
                    return nil
                }
                guard let value = json(entry.value, path: "\(path).\(key)") else { return nil }
                object[key] = value
            }
            return .object(object)
        }
    }
}

extension YAMLNode {
    /// The node a JSON path inside this node's value leads to, as deep as it exists.
    func descendant(at path: [OptionProblem.PathComponent]) -> YAMLNode {
        var node = self
        for component in path {
            switch component {
            case .index(let index):
                guard let items = node.sequence, items.indices.contains(index) else { return node }
                node = items[index]
            case .key(let key):
                guard let entry = node.mapping?.first(where: { $0.key.scalar?.text == key }) else { return node }
                node = entry.value
            }
        }
        return node
    }
}

/// "Did you mean" suggestions.
enum Hints {
    /// The closest candidate within a small edit distance, if any.
    static func nearest(to word: String, among candidates: [String]) -> String? {
        let limit = word.count <= 3 ? 1 : (word.count <= 7 ? 2 : 3)
        let scored = candidates.map { (candidate: $0, distance: distance(word.lowercased(), $0)) }
        guard let best = scored.min(by: { $0.distance < $1.distance }), best.distance <= limit else { return nil }
        return best.candidate
    }

    /// Optimal string alignment distance: insertions, deletions, substitutions and
    /// transpositions of neighbours each cost one.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var table = Array(repeating: Array(repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { table[i][0] = i }
        for j in 0...b.count { table[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    table[i][j] = min(table[i][j], table[i - 2][j - 2] + 1)
                }
            }
        }
        return table[a.count][b.count]
    }
}
