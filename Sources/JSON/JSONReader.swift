import Basics

/// A forward-only reader over one JSON document, for a caller that knows the shape it expects
/// and wants a few of its members without building a `JSONValue` tree (a stream chunk is read
/// hundreds of times per reply).
///
/// Everything it passes over is checked as `JSONParser` checks it, and `JSONReader.read` ends
/// with the same trailing-data check, so a document it reads to the end is one the parser
/// accepts. Two things are the caller's: duplicate keys (the parser rejects them; the reader
/// cannot know which keys the caller compared), and keys written with escapes, which match no
/// name in `Key.is(_:)`. A caller that meets a key it does not expect should give the document
/// to `JSONParser` instead.
public struct JSONReader {
    private var cursor: Cursor
    /// Nesting of the containers opened so far.
    private var depth = 0
    /// The container just opened has no member yet: no comma before the next one.
    private var atFirstMember = false

    private init(_ bytes: UnsafeBufferPointer<UInt8>) {
        cursor = Cursor(bytes: bytes, maxDepth: JSONParser.defaultMaxDepth)
    }

    /// Reads `text` with `body`, which must consume exactly one value; anything after it is an error.
    public static func read<Result>(
        _ text: String, _ body: (inout JSONReader) throws(JSONParseError) -> Result
    ) throws(JSONParseError) -> Result {
        var text = text
        // The closure of withUTF8 only rethrows untyped errors.
        let result = text.withUTF8 { bytes in
            Swift.Result { () throws(JSONParseError) in
                var reader = JSONReader(bytes)
                let result = try body(&reader)
                reader.cursor.skipWhitespace()
                guard reader.cursor.index == bytes.count else { throw reader.cursor.error(.trailingData) }
                return result
            }
        }
        return try result.get()
    }

    /// An object member's name as written between its quotes.
    public struct Key {
        @usableFromInline let bytes: UnsafeBufferPointer<UInt8>

        /// Inlinable: a chunk's keys are each compared with several names, most of them
        /// rejected by length alone.
        @inlinable
        public func `is`(_ name: StaticString) -> Bool {
            JSONReader.equal(bytes, UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        }
    }

    /// By hand: `elementsEqual` over two buffers did not inline, and cost more than the
    /// comparison itself.
    @inlinable
    static func equal(_ lhs: UnsafeBufferPointer<UInt8>, _ rhs: UnsafeBufferPointer<UInt8>) -> Bool {
        guard lhs.count == rhs.count else { return false }
        for offset in 0..<lhs.count where lhs[offset] != rhs[offset] { return false }
        return true
    }

    /// Opens an object; `nextKey` then walks its members.
    public mutating func beginObject() throws(JSONParseError) {
        try open(UInt8(ascii: "{"))
    }

    /// The next member's key, with its colon consumed (its value must be read or skipped next),
    /// or nil at the end of the object.
    public mutating func nextKey() throws(JSONParseError) -> Key? {
        guard try nextMember(closing: UInt8(ascii: "}")) else { return nil }
        guard try cursor.peek() == UInt8(ascii: "\"") else {
            throw cursor.error(.unexpectedCharacter(cursor.bytes[cursor.index]))
        }
        cursor.index += 1
        let start = cursor.index
        // Only the closing quote matters here: an escape makes the key match no name, and the
        // caller that cannot place a key hands the document to the parser.
        while cursor.index < cursor.bytes.count, cursor.bytes[cursor.index] != UInt8(ascii: "\"") {
            if cursor.bytes[cursor.index] == UInt8(ascii: "\\") { cursor.index += 1 }
            cursor.index += 1
        }
        guard cursor.index < cursor.bytes.count else { throw cursor.error(.unexpectedEnd) }
        let key = Key(bytes: UnsafeBufferPointer(rebasing: cursor.bytes[start..<cursor.index]))
        cursor.index += 1
        cursor.skipWhitespace()
        guard try cursor.peek() == UInt8(ascii: ":") else {
            throw cursor.error(.unexpectedCharacter(cursor.bytes[cursor.index]))
        }
        cursor.index += 1
        return key
    }

    /// Opens an array; `nextElement` then walks its elements.
    public mutating func beginArray() throws(JSONParseError) {
        try open(UInt8(ascii: "["))
    }

    /// True when another element follows (to be read or skipped next), false at the array's end.
    public mutating func nextElement() throws(JSONParseError) -> Bool {
        try nextMember(closing: UInt8(ascii: "]"))
    }

    /// What kind of value comes next, without consuming it.
    public mutating func peekKind() throws(JSONParseError) -> Kind {
        cursor.skipWhitespace()
        switch try cursor.peek() {
        case UInt8(ascii: "{"): return .object
        case UInt8(ascii: "["): return .array
        case UInt8(ascii: "\""): return .string
        case UInt8(ascii: "n"): return .null
        default: return .other
        }
    }

    public enum Kind { case object, array, string, null, other }

    /// Reads a string value, escapes decoded.
    public mutating func readString() throws(JSONParseError) -> String {
        cursor.skipWhitespace()
        guard try cursor.peek() == UInt8(ascii: "\"") else {
            throw cursor.error(.unexpectedCharacter(cursor.bytes[cursor.index]))
        }
        return try cursor.parseString()
    }

    /// Reads any value as a tree.
    public mutating func readValue() throws(JSONParseError) -> JSONValue {
        cursor.skipWhitespace()
        return try cursor.parseValue(depth: depth)
    }

    /// Reads a string value that usually repeats `known` (a stream's model name on every
    /// chunk): when it is that string, written without escapes, `known` itself comes back and
    /// nothing is copied.
    public mutating func readString(usually known: String?) throws(JSONParseError) -> String {
        cursor.skipWhitespace()
        let start = cursor.index
        if let known, let raw = try plainString() {
            // Through `withUTF8`: `elementsEqual` over a String's UTF-8 view costs more than
            // the copy it saves.
            var known = known
            if known.withUTF8({ Self.equal(raw, $0) }) { return known }
            cursor.index = start
        }
        return try readString()
    }

    /// Reads a string value and says whether it is `name`, written without escapes: a string
    /// that spells it with escapes is not it.
    public mutating func readString(is name: StaticString) throws(JSONParseError) -> Bool {
        cursor.skipWhitespace()
        guard let raw = try plainString() else {
            _ = try readString()
            return false
        }
        return Key(bytes: raw).is(name)
    }

    /// Passes over any value, checking it. A plain ASCII string or an integer, the common
    /// cases, is not copied or converted.
    public mutating func skipValue() throws(JSONParseError) {
        cursor.skipWhitespace()
        switch try cursor.peek() {
        case UInt8(ascii: "\""):
            if try plainString() == nil { _ = try cursor.parseString() }
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            let start = cursor.index
            // A fraction, an exponent or an integer of 309 digits or more may overflow to
            // infinity, which the parser rejects: those go through its conversion.
            guard try cursor.scanNumber(), cursor.index - start <= 300 else {
                cursor.index = start
                _ = try cursor.parseNumber()
                return
            }
        default:
            _ = try cursor.parseValue(depth: depth)
        }
    }

    /// The contents of the string value at the cursor, which is moved past it, when it is plain
    /// ASCII without escapes; otherwise nil, with the cursor left at the opening quote.
    private mutating func plainString() throws(JSONParseError) -> UnsafeBufferPointer<UInt8>? {
        guard try cursor.peek() == UInt8(ascii: "\"") else {
            throw cursor.error(.unexpectedCharacter(cursor.bytes[cursor.index]))
        }
        let start = cursor.index + 1
        let end = JSONStringBytes.firstSpecial(in: cursor.bytes, from: start)
        // Escapes, control characters and UTF-8 to validate: the parser's own checks.
        guard end < cursor.bytes.count, cursor.bytes[end] == UInt8(ascii: "\"") else { return nil }
        let raw = UnsafeBufferPointer(rebasing: cursor.bytes[start..<end])
        guard ByteScan.isASCII(raw) else { return nil }
        cursor.index = end + 1
        return raw
    }

    private mutating func open(_ bracket: UInt8) throws(JSONParseError) {
        cursor.skipWhitespace()
        guard try cursor.peek() == bracket else { throw cursor.error(.unexpectedCharacter(cursor.bytes[cursor.index])) }
        depth += 1
        guard depth <= cursor.maxDepth else { throw cursor.error(.tooDeep(limit: cursor.maxDepth)) }
        cursor.index += 1
        atFirstMember = true
    }

    /// Consumes the comma before a member, or the closing bracket (then false).
    private mutating func nextMember(closing: UInt8) throws(JSONParseError) -> Bool {
        cursor.skipWhitespace()
        let byte = try cursor.peek()
        if byte == closing {
            cursor.index += 1
            depth -= 1
            // The enclosing container, if any, has at least this member.
            atFirstMember = false
            return false
        }
        if atFirstMember {
            atFirstMember = false
        } else {
            guard byte == UInt8(ascii: ",") else { throw cursor.error(.unexpectedCharacter(byte)) }
            cursor.index += 1
            cursor.skipWhitespace()
        }
        return true
    }
}
