internal import CYAML

/// Turns one YAML document into a `YAMLNode` tree, stricter than libyaml alone: duplicate
/// keys, a second document, unbounded alias expansion and excessive nesting are errors.
public enum YAMLParser {
    /// Nodes that aliases may add in total; a "billion laughs" file stops at the alias that
    /// crosses it instead of being expanded.
    public static let defaultMaxAliasNodes = 10_000
    /// Deeper collections are rejected so that walking the tree can never exhaust the stack.
    public static let defaultMaxDepth = 200

    /// Parses `text`; returns nil when the stream holds no document (empty, only comments).
    public static func parse(
        _ text: String, maxAliasNodes: Int = defaultMaxAliasNodes, maxDepth: Int = defaultMaxDepth
    ) throws(YAMLError) -> YAMLNode? {
        try parse(bytes: Array(text.utf8), maxAliasNodes: maxAliasNodes, maxDepth: maxDepth)
    }

    /// Parses UTF-8 `bytes`; returns nil when the stream holds no document (empty, only comments).
    public static func parse(
        bytes: [UInt8], maxAliasNodes: Int = defaultMaxAliasNodes, maxDepth: Int = defaultMaxDepth
    ) throws(YAMLError) -> YAMLNode? {
        let source = Source(bytes: bytes)
        try source.validateUTF8()
        guard !bytes.isEmpty else { return nil }
        // libyaml reads the buffer in place without copying it, so the whole parse runs while
        // the buffer is pinned.
        let result = bytes.withUnsafeBufferPointer { buffer in
            Result { () throws(YAMLError) in
                let reader = try EventReader(buffer: buffer, source: source)
                var builder = TreeBuilder(source: source, maxAliasNodes: maxAliasNodes, maxDepth: maxDepth)
                while try builder.consume(reader.next()) {}
                return builder.root
            }
        }
        return try result.get()
    }
}

/// The document text, for positions libyaml reports as byte offsets and for explaining errors.
private struct Source {
    let bytes: [UInt8]

    /// Rejects invalid UTF-8 with the position of the first bad byte (libyaml would only give
    /// an offset).
    func validateUTF8() throws(YAMLError) {
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        var offset = 0
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let encoded): offset += encoded.count
            case .emptyInput: return
            case .error:
                throw YAMLError(
                    .invalidUTF8, at: mark(atByteOffset: offset),
                    "invalid UTF-8 (byte 0x\(String(bytes[offset], radix: 16, uppercase: true)))")
            }
        }
    }

    func mark(atByteOffset offset: Int) -> Mark {
        var line = 1
        var lineStart = 0
        for index in 0..<min(offset, bytes.count) where bytes[index] == UInt8(ascii: "\n") {
            line += 1
            lineStart = index + 1
        }
        let prefix = bytes[lineStart..<min(offset, bytes.count)]
        let column = String(decoding: prefix, as: UTF8.self).unicodeScalars.count + 1
        return Mark(line: line, column: column)
    }

    /// The text of `line` (1-based) up to `column` (1-based, exclusive).
    func linePrefix(_ mark: Mark) -> Substring.UnicodeScalarView {
        let lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        guard mark.line >= 1, mark.line <= lines.count else { return Substring("").unicodeScalars }
        let text = Substring(decoding: lines[mark.line - 1], as: UTF8.self).unicodeScalars
        return text.prefix(max(0, mark.column))
    }
}

private func mark(_ mark: yaml_mark_t) -> Mark {
    Mark(line: Int(mark.line) + 1, column: Int(mark.column) + 1)
}

/// The libyaml parser over a pinned buffer: yields events as Swift values. The parser lives on
/// the heap because libyaml keeps a pointer to it inside itself (its read handler's data).
private final class EventReader {
    private let parser = UnsafeMutablePointer<yaml_parser_t>.allocate(capacity: 1)
    private let source: Source

    init(buffer: UnsafeBufferPointer<UInt8>, source: Source) throws(YAMLError) {
        self.source = source
        guard yaml_parser_initialize(parser) == 1 else {
            parser.deallocate()
            throw YAMLError(.syntax, at: Mark(line: 1, column: 1), "libyaml could not initialize its parser")
        }
        yaml_parser_set_input_string(parser, buffer.baseAddress, buffer.count)
    }

    deinit {
        yaml_parser_delete(parser)
        parser.deallocate()
    }

    func next() throws(YAMLError) -> Event {
        var event = yaml_event_t()
        try check(yaml_parser_parse(parser, &event))
        defer { yaml_event_delete(&event) }
        let start = mark(event.start_mark)
        switch event.type {
        case YAML_STREAM_END_EVENT: return Event(kind: .streamEnd, mark: start)
        case YAML_DOCUMENT_START_EVENT: return Event(kind: .documentStart, mark: start)
        case YAML_ALIAS_EVENT: return Event(kind: .alias(string(event.data.alias.anchor) ?? ""), mark: start)
        case YAML_SCALAR_EVENT:
            let data = event.data.scalar
            let text = String(decoding: UnsafeBufferPointer(start: data.value, count: data.length), as: UTF8.self)
            let scalar = Scalar(text, style: style(data.style), tag: string(data.tag))
            return Event(kind: .scalar(scalar, anchor: string(data.anchor)), mark: start)
        case YAML_SEQUENCE_START_EVENT:
            return Event(kind: .sequenceStart(anchor: string(event.data.sequence_start.anchor)), mark: start)
        case YAML_MAPPING_START_EVENT:
            return Event(kind: .mappingStart(anchor: string(event.data.mapping_start.anchor)), mark: start)
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT: return Event(kind: .collectionEnd, mark: start)
        default: return Event(kind: .ignored, mark: start)
        }
    }

    private func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        pointer.map { String(cString: $0) }
    }

    private func style(_ style: yaml_scalar_style_t) -> ScalarStyle {
        switch style {
        case YAML_SINGLE_QUOTED_SCALAR_STYLE: .singleQuoted
        case YAML_DOUBLE_QUOTED_SCALAR_STYLE: .doubleQuoted
        case YAML_LITERAL_SCALAR_STYLE: .literal
        case YAML_FOLDED_SCALAR_STYLE: .folded
        default: .plain
        }
    }

    /// The one place libyaml failures become `YAMLError`s, with libyaml's own message and
    /// position, explained where the usual cause is known.
    private func check(_ result: Int32) throws(YAMLError) {
        guard result == 0 else { return }
        let problem = parser.pointee.problem.map { String(cString: $0) } ?? "unknown error"
        switch parser.pointee.error {
        case YAML_MEMORY_ERROR:
            throw YAMLError(.syntax, at: Mark(line: 1, column: 1), "libyaml ran out of memory")
        case YAML_READER_ERROR:
            throw YAMLError(
                .syntax, at: source.mark(atByteOffset: parser.pointee.problem_offset), "invalid YAML: \(problem)")
        default:
            let at = mark(parser.pointee.problem_mark)
            let indentation = source.linePrefix(at)
            if indentation.contains("\t"), indentation.allSatisfy({ $0 == " " || $0 == "\t" }) {
                throw YAMLError(.tabIndentation, at: at, "tab character in indentation; YAML indents with spaces only")
            }
            var message = "invalid YAML: \(problem)"
            if let context = parser.pointee.context.map({ String(cString: $0) }) {
                let contextMark = mark(parser.pointee.context_mark)
                message += contextMark == at ? " (\(context))" : " (\(context) at \(contextMark))"
            }
            throw YAMLError(.syntax, at: at, message)
        }
    }
}

private struct Event {
    enum Kind {
        case streamEnd, documentStart, collectionEnd, ignored
        case alias(String)
        case scalar(Scalar, anchor: String?)
        case sequenceStart(anchor: String?)
        case mappingStart(anchor: String?)
    }

    var kind: Kind
    var mark: Mark
}

/// Assembles events into a tree, enforcing the rules libyaml leaves to its callers.
private struct TreeBuilder {
    private struct Frame {
        var isMapping: Bool
        var mark: Mark
        var anchor: String?
        var children: [YAMLNode] = []
        var entries: [MappingEntry] = []
        var pendingKey: YAMLNode?
        /// Scalar keys seen so far, for a duplicate check that stays linear on large mappings.
        var scalarKeys: Set<Scalar> = []
        var nodeCount = 1
    }

    let source: Source
    let maxAliasNodes: Int
    let maxDepth: Int
    private(set) var root: YAMLNode?
    private var documents = 0
    private var stack: [Frame] = []
    private var anchors: [String: (node: YAMLNode, count: Int)] = [:]
    private var aliasNodes = 0

    init(source: Source, maxAliasNodes: Int, maxDepth: Int) {
        self.source = source
        self.maxAliasNodes = maxAliasNodes
        self.maxDepth = maxDepth
    }

    /// Returns false at the end of the stream.
    mutating func consume(_ event: Event) throws(YAMLError) -> Bool {
        switch event.kind {
        case .streamEnd: return false
        case .ignored: break
        case .documentStart:
            documents += 1
            guard documents == 1 else {
                throw YAMLError(.multipleDocuments, at: event.mark, "a second YAML document; a file holds exactly one")
            }
        case .alias(let name):
            guard let anchored = anchors[name] else {
                throw YAMLError(
                    .undefinedAlias, at: event.mark, "alias '*\(name)' refers to no anchor defined before it")
            }
            aliasNodes += anchored.count
            guard aliasNodes <= maxAliasNodes else {
                throw YAMLError(
                    .aliasExpansion, at: event.mark,
                    "aliases expand to more than \(maxAliasNodes) nodes; refusing a possible \"billion laughs\" document"
                )
            }
            try add(YAMLNode(anchored.node.content, mark: event.mark), count: anchored.count)
        case .scalar(let scalar, let anchor):
            let node = YAMLNode(.scalar(scalar), mark: event.mark)
            if let anchor { anchors[anchor] = (node, 1) }
            try add(node, count: 1)
        case .sequenceStart(let anchor), .mappingStart(let anchor):
            guard stack.count < maxDepth else {
                throw YAMLError(.tooDeep, at: event.mark, "collections nested deeper than \(maxDepth) levels")
            }
            var isMapping = false
            if case .mappingStart = event.kind { isMapping = true }
            stack.append(Frame(isMapping: isMapping, mark: event.mark, anchor: anchor))
        case .collectionEnd:
            let frame = stack.removeLast()
            let content: YAMLNode.Content = frame.isMapping ? .mapping(frame.entries) : .sequence(frame.children)
            let node = YAMLNode(content, mark: frame.mark)
            if let anchor = frame.anchor { anchors[anchor] = (node, frame.nodeCount) }
            try add(node, count: frame.nodeCount)
        }
        return true
    }

    private mutating func add(_ node: YAMLNode, count: Int) throws(YAMLError) {
        guard !stack.isEmpty else {
            root = node
            return
        }
        stack[stack.count - 1].nodeCount += count
        if !stack[stack.count - 1].isMapping {
            stack[stack.count - 1].children.append(node)
        } else if let key = stack[stack.count - 1].pendingKey {
            stack[stack.count - 1].entries.append(MappingEntry(key: key, value: node))
            stack[stack.count - 1].pendingKey = nil
        } else {
            try checkUnique(key: node, in: stack[stack.count - 1])
            if let scalar = node.scalar { stack[stack.count - 1].scalarKeys.insert(scalar.withoutStyle) }
            stack[stack.count - 1].pendingKey = node
        }
    }

    private func checkUnique(key: YAMLNode, in frame: Frame) throws(YAMLError) {
        let duplicate =
            if let scalar = key.scalar {
                frame.scalarKeys.contains(scalar.withoutStyle)
            } else {
                frame.entries.contains { $0.key.hasSameContent(as: key) }
            }
        guard duplicate else { return }
        let first = frame.entries.first { $0.key.hasSameContent(as: key) }?.key.mark
        let name = key.scalar.map { "'\($0.text)'" } ?? "key"
        throw YAMLError(
            .duplicateKey, at: key.mark, "duplicate key \(name)" + (first.map { " (first at \($0))" } ?? ""))
    }
}

extension Scalar {
    /// `"a"` and `a` name the same key.
    fileprivate var withoutStyle: Scalar { Scalar(text, style: .plain, tag: tag) }
}
