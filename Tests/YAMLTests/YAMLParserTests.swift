import Testing

@testable import YAML

@Suite("YAMLParser")
struct YAMLParserTests {
    private func parseError(_ text: String) -> YAMLError? {
        parseError(bytes: Array(text.utf8))
    }

    private func parseError(bytes: [UInt8]) -> YAMLError? {
        do {
            _ = try YAMLParser.parse(bytes: bytes)
            return nil
        } catch {
            return error
        }
    }

    @Test("every node carries its 1-based line and column")
    func marks() throws {
        let root = try #require(
            try YAMLParser.parse(
                """
                model: mistral-small-latest
                tools:
                  - name: get_order
                    parameters: {type: object}
                """))
        #expect(root.mark == Mark(line: 1, column: 1))
        let entries = try #require(root.mapping)
        #expect(entries.map(\.key.scalar?.text) == ["model", "tools"])
        #expect(entries[0].value.mark == Mark(line: 1, column: 8))
        #expect(entries[1].key.mark == Mark(line: 2, column: 1))
        let tool = try #require(root["tools"]?.sequence?.first)
        #expect(tool.mark == Mark(line: 3, column: 5))
        #expect(tool["parameters"]?.mark == Mark(line: 4, column: 17))
        #expect(tool["parameters"]?["type"]?.mark == Mark(line: 4, column: 24))
    }

    @Test("columns count characters, not bytes")
    func columnsAreCharacters() throws {
        let root = try #require(try YAMLParser.parse("héllo: wörld\nx: [ü, z]\n"))
        #expect(root["héllo"]?.mark == Mark(line: 1, column: 8))
        #expect(root["x"]?.sequence?[1].mark == Mark(line: 2, column: 8))
    }

    @Test("quoted and plain scalars resolve differently")
    func scalarResolution() throws {
        let root = try #require(
            try YAMLParser.parse(
                """
                quoted: "0660"
                single: '1.5'
                plain: 0660
                octal: 0o660
                hex: 0x1F
                float: 0.7
                exp: 1e3
                yes: true
                null1: ~
                null2:
                tagged: !!str 42
                word: auto
                block: |
                  text

                """))
        #expect(root["quoted"]?.resolved == .string("0660"))
        #expect(root["quoted"]?.scalar?.style == .doubleQuoted)
        #expect(root["single"]?.resolved == .string("1.5"))
        #expect(root["plain"]?.resolved == .int(660))
        #expect(root["octal"]?.resolved == .int(0o660))
        #expect(root["hex"]?.resolved == .int(31))
        #expect(root["float"]?.resolved == .double(0.7))
        #expect(root["exp"]?.resolved == .double(1000))
        #expect(root["yes"]?.resolved == .bool(true))
        #expect(root["null1"]?.resolved == .null)
        #expect(root["null2"]?.resolved == .null)
        #expect(root["tagged"]?.resolved == .string("42"))
        #expect(root["word"]?.resolved == .string("auto"))
        #expect(root["block"]?.resolved == .string("text\n"))
        #expect(root["block"]?.scalar?.style == .literal)
    }

    @Test("mapping keys keep document order")
    func orderedKeys() throws {
        let root = try #require(try YAMLParser.parse("z: 1\na: 2\nm: 3\n"))
        #expect(root.mapping?.map(\.key.scalar?.text) == ["z", "a", "m"])
    }

    @Test("empty and comment-only streams hold no document")
    func emptyStream() throws {
        #expect(try YAMLParser.parse("") == nil)
        #expect(try YAMLParser.parse("# only a comment\n\n") == nil)
    }

    @Test("a duplicate key is reported at the second key")
    func duplicateKey() throws {
        let error = try #require(parseError("model: a\ntemperature: 1\n\"model\": b\n"))
        #expect(error.code == .duplicateKey)
        #expect(error.mark == Mark(line: 3, column: 1))
        #expect(error.message == "duplicate key 'model' (first at 1:1)")
    }

    @Test("duplicate keys are found in nested flow mappings too")
    func nestedDuplicateKey() throws {
        let error = try #require(parseError("socket: {mode: \"0660\", mode: \"0600\"}\n"))
        #expect(error.code == .duplicateKey)
        #expect(error.mark == Mark(line: 1, column: 24))
    }

    @Test("a second document is rejected where it starts")
    func multipleDocuments() throws {
        let error = try #require(parseError("a: 1\n---\nb: 2\n"))
        #expect(error.code == .multipleDocuments)
        #expect(error.mark == Mark(line: 2, column: 1))
    }

    @Test("aliases expand within the bound")
    func aliases() throws {
        let root = try #require(try YAMLParser.parse("base: &b {type: string}\ncopy: *b\n"))
        #expect(root["copy"]?["type"]?.resolved == .string("string"))
        #expect(root["copy"]?.mark == Mark(line: 2, column: 7))
    }

    @Test("a billion-laughs document fails fast at the alias that crosses the bound")
    func billionLaughs() throws {
        var text = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
        var previous = "a"
        for name in ["b", "c", "d", "e", "f", "g", "h", "i"] {
            text += "\(name): &\(name) [" + Array(repeating: "*\(previous)", count: 9).joined(separator: ",") + "]\n"
            previous = name
        }
        let clock = ContinuousClock()
        var error: YAMLError?
        let elapsed = clock.measure { error = parseError(text) }
        let failure = try #require(error)
        #expect(failure.code == .aliasExpansion)
        // Aliases through level d add 8,289 nodes; the first *d (7,381 nodes) crosses 10,000.
        #expect(failure.mark == Mark(line: 5, column: 8))
        #expect(failure.message.contains("10000"))
        #expect(elapsed < .seconds(5))
    }

    @Test("an alias to an undefined anchor is an error")
    func undefinedAlias() throws {
        let error = try #require(parseError("a: *nowhere\n"))
        #expect(error.code == .undefinedAlias)
        #expect(error.mark == Mark(line: 1, column: 4))
    }

    @Test("tab indentation is explained")
    func tabIndentation() throws {
        let error = try #require(parseError("model: x\n\ttemperature: 0.5\n"))
        #expect(error.code == .tabIndentation)
        #expect(error.mark == Mark(line: 2, column: 1))
        #expect(error.message.contains("tab"))

        let nested = try #require(parseError("limits:\n  timeout: 30s\n\t idle_timeout: 60s\n"))
        #expect(nested.code == .tabIndentation)
        #expect(nested.mark == Mark(line: 3, column: 1))
    }

    @Test("invalid UTF-8 is reported at the bad byte")
    func invalidUTF8() throws {
        let bytes = Array("model: x\ndescription: ab".utf8) + [0xFF, 0x0A]
        let error = try #require(parseError(bytes: bytes))
        #expect(error.code == .invalidUTF8)
        #expect(error.mark == Mark(line: 2, column: 16))
        #expect(error.message.contains("UTF-8"))
    }

    @Test("libyaml's own errors keep its message and position")
    func syntaxErrors() throws {
        let unclosed = try #require(parseError("a: [1, 2\nb: 3\n"))
        #expect(unclosed.code == .syntax)
        #expect(unclosed.message.hasPrefix("invalid YAML: "))

        let badIndent = try #require(parseError("a: 1\n b: 2\n"))
        #expect(badIndent.code == .syntax)
        #expect(badIndent.mark == Mark(line: 2, column: 3))
        #expect(badIndent.message.contains("mapping values are not allowed"))

        let quote = try #require(parseError("a: \"open\nb: 1\n"))
        #expect(quote.code == .syntax)
        #expect(quote.message.contains("quoted scalar"))
    }

    @Test("libyaml's reader errors are placed by their byte offset")
    func controlCharacter() throws {
        let error = try #require(parseError("model: x\ndescription: \u{1}bell\n"))
        #expect(error.code == .syntax)
        #expect(error.mark == Mark(line: 2, column: 14))
        #expect(error.message == "invalid YAML: control characters are not allowed")
    }

    @Test("CRLF line endings keep line numbers")
    func crlf() throws {
        let root = try #require(try YAMLParser.parse("a: 1\r\nb: 2\r\n"))
        #expect(root["b"]?.mark == Mark(line: 2, column: 4))
    }

    @Test("nesting beyond the bound is rejected")
    func tooDeep() throws {
        let text = String(repeating: "[", count: 1000) + String(repeating: "]", count: 1000)
        let error = try #require(parseError(text))
        #expect(error.code == .tooDeep)
        #expect(error.mark == Mark(line: 1, column: YAMLParser.defaultMaxDepth + 1))
    }
}
