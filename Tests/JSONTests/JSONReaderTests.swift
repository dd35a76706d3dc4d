import JSON
import Testing

@Suite struct JSONReaderTests {
    /// Reads `{"a":…,"b":[…]}`-like objects: every member's key, strings read, the rest skipped.
    private func walk(_ text: String) throws(JSONParseError) -> [String] {
        try JSONReader.read(text) { (reader) throws(JSONParseError) in
            var seen: [String] = []
            try reader.beginObject()
            while let key = try reader.nextKey() {
                seen.append(key.is("a") ? "a" : key.is("b") ? "b" : "?")
                switch try reader.peekKind() {
                case .string: seen.append(try reader.readString())
                case .array:
                    try reader.beginArray()
                    while try reader.nextElement() { try reader.skipValue() }
                default: try reader.skipValue()
                }
            }
            return seen
        }
    }

    @Test func walksMembersInOrderAndDecodesStrings() throws {
        #expect(
            try walk(#" { "a" : "x\u00e9\n" , "b":[1, "two", {"c":null}, [true]], "zz": {"d": 2.5} } "#) == [
                "a", "xé\n", "b", "?",
            ])
        #expect(try walk("{}") == [])
    }

    @Test func aKeyWithAnEscapeMatchesNoName() throws {
        #expect(try walk(#"{"\u0061":1,"a\"":2}"#) == ["?", "?"])
    }

    @Test func readsAnyValueAsATree() throws {
        let value = try JSONReader.read(#"{"u":{"x":[1,2]}}"#) { (reader) throws(JSONParseError) in
            try reader.beginObject()
            _ = try reader.nextKey()
            let value = try reader.readValue()
            #expect(try reader.nextKey() == nil)
            return value
        }
        #expect(value == ["x": [1, 2]])
    }

    @Test func readsAStringAsTheOneItUsuallyIsOrAsWritten() throws {
        func read(_ text: String, usually known: String?) throws -> String {
            try JSONReader.read(text) { (reader) throws(JSONParseError) in try reader.readString(usually: known) }
        }
        #expect(try read(#""m""#, usually: "m") == "m")
        #expect(try read(#""n""#, usually: "m") == "n")
        #expect(try read(#""\u006d""#, usually: "m") == "m")
        #expect(try read(#""é""#, usually: nil) == "é")
        #expect(throws: JSONParseError.self) { try read("7", usually: "m") }
    }

    /// A plain string is found eight bytes at a time: an escape or a control character at any
    /// offset of a word or of its tail must send the string to the parser, even when its text
    /// as written is the one expected, and a string without them must match as written.
    @Test func aPlainStringIsToldFromOneToDecodeAtEveryOffset() throws {
        func read(_ text: String, usually known: String) throws -> String {
            try JSONReader.read(text) { (reader) throws(JSONParseError) in try reader.readString(usually: known) }
        }
        for length in 0...20 {
            for offset in 0...length {
                let before = String(repeating: "a", count: offset)
                let after = String(repeating: "b", count: length - offset)
                #expect(try read("\"\(before)\(after)\"", usually: before + after) == before + after)
                let escaped = before + "\\n" + after
                #expect(try read("\"\(escaped)\"", usually: escaped) == before + "\n" + after)
                let control = before + "\u{01}" + after
                #expect(throws: JSONParseError.self) { try read("\"\(control)\"", usually: control) }
                #expect(try read("\"\(before)é\(after)\"", usually: before + after) == before + "é" + after)
            }
        }
    }

    @Test func saysWhetherAStringIsANameWrittenWithoutEscapes() throws {
        func check(_ text: String) throws -> Bool {
            try JSONReader.read(text) { (reader) throws(JSONParseError) in try reader.readString(is: "chunk") }
        }
        #expect(try check(#""chunk""#))
        #expect(try !check(#""chunks""#))
        #expect(try !check(#""\u0063hunk""#))
        #expect(throws: JSONParseError.self) { try check(#""chunk\q""#) }
    }

    @Test func skipsNumbersAsTheParserReadsThem() throws {
        #expect(try walk(#"{"a":-0,"b":123456789012345678901234567890,"c":2.5e-3,"d":1E+2}"#) == ["a", "b", "?", "?"])
    }

    /// What the parser rejects, the reader rejects too, also in the values it only skips.
    @Test(arguments: [
        "", "{", #"{"a":1,}"#, #"{"a" 1}"#, #"{"a":1 "b":2}"#, #"{,"a":1}"#, #"{"a":[1,]}"#, #"{"a":[,1]}"#,
        #"{"a":01}"#, #"{"a":"x\u{01}"}"#, #"{"a":"\q"}"#, #"{"a":tru}"#, "{} x", #"{"a":1}}"#, #"{"a":[1}"#,
        "{\"a\":\"\u{01}\"}", #"{"a":"\ud800"}"#,
        #"{"a":1e999}"#, #"{"a":-}"#, #"{"a":1.}"#, #"{"a":-x}"#,
        // An integer too long for a Double: infinity, which the parser rejects.
        #"{"a":1"# + String(repeating: "0", count: 400) + "}",
    ])
    func rejectsWhatTheParserRejects(text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
        #expect(throws: JSONParseError.self) { try walk(text) }
    }

    @Test func boundsNesting() {
        let deep = #"{"a":"# + String(repeating: "[", count: 200) + String(repeating: "]", count: 200) + "}"
        #expect {
            try walk(deep)
        } throws: { error in
            (error as? JSONParseError)?.reason == .tooDeep(limit: 128)
        }
    }
}
