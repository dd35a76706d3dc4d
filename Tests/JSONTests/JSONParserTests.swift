import JSON
import Testing

@Suite struct JSONParserTests {
    @Test func parsesEveryKindOfValueInOrder() throws {
        let value = try JSONParser.parse(#"{"b":1,"a":[true,false,null],"c":-2.5e2,"d":"x\u00e9\n"}"#)
        #expect(value.objectValue?.keys == ["b", "a", "c", "d"])
        #expect(value["b"] == .int(1))
        #expect(value["a"] == [true, false, nil])
        #expect(value["c"] == .double(-250))
        #expect(value["d"] == .string("xé\n"))
    }

    @Test func decodesSurrogatePairs() throws {
        #expect(try JSONParser.parse(#""\ud83d\ude00""#) == .string("😀"))
        #expect(throws: JSONParseError.self) { try JSONParser.parse(#""\ud83d""#) }
    }

    @Test func hugeIntegersBecomeDoublesAndOverflowIsRejected() throws {
        #expect(try JSONParser.parse("123456789012345678901234567890") == .double(1.2345678901234568e29))
        #expect(throws: JSONParseError.self) { try JSONParser.parse("1e999") }
    }

    @Test func rejectsDuplicateKeysWithTheirName() {
        #expect(throws: JSONParseError(reason: .duplicateKey("id"), offset: 9)) {
            try JSONParser.parse(#"{"id":1, "id":2}"#)
        }
    }

    @Test func boundsNestingInsteadOfOverflowingTheStack() {
        let deep = String(repeating: "[", count: 200_000)
        #expect(throws: JSONParseError(reason: .tooDeep(limit: 128), offset: 128)) { try JSONParser.parse(deep) }
    }

    @Test func rejectsInvalidUTF8() {
        let bytes: [UInt8] = [0x22, 0xFF, 0xFE, 0x22]
        #expect(throws: JSONParseError(reason: .invalidUTF8, offset: 1)) { try JSONParser.parse(bytes: bytes) }
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "01", "1.", "-", "tru", "\"a\u{01}\"", "{} x", "NaN", "'a'"])
    func rejectsMalformedDocuments(text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
    }

    @Test func writesCompactJSONThatParsesBack() throws {
        let value: JSONValue = ["text": "line\nbreak \"quoted\" \u{01}", "n": 3, "x": 0.5, "list": [1, nil]]
        let text = value.jsonText
        #expect(!text.contains("\n"))
        #expect(text == #"{"text":"line\nbreak \"quoted\" \u0001","n":3,"x":0.5,"list":[1,null]}"#)
        #expect(try JSONParser.parse(text) == value)
    }

    /// The writer looks for bytes to escape eight at a time: each of them at every offset of a
    /// word and of the tail, beside bytes close to them (0x1F..0x21, 0x5B, 0x5D, 0x7F) and
    /// multi-byte characters that need no escaping, must come out as one by one would.
    @Test func escapesEachSpecialByteAtEveryOffset() throws {
        let specials: [(Character, String)] = [
            ("\"", #"\""#), ("\\", #"\\"#), ("\n", #"\n"#), ("\r", #"\r"#), ("\t", #"\t"#), ("\u{01}", #"\u0001"#),
            ("\u{1F}", #"\u001f"#),
        ]
        let plain = " !#[]\u{7F}é€😀abc"
        for (special, escaped) in specials {
            for length in 0...20 {
                for offset in 0...length {
                    let filler = Array(plain)
                    let before = String((0..<offset).map { filler[$0 % filler.count] })
                    let after = String((offset..<length).map { filler[$0 % filler.count] })
                    let value = JSONValue.string(before + String(special) + after)
                    #expect(value.jsonText == "\"" + before + escaped + after + "\"")
                    #expect(try JSONParser.parse(value.jsonText) == value)
                }
            }
        }
    }

    @Test func objectSubscriptReplacesAppendsAndRemoves() {
        var object: JSONObject = ["a": 1, "b": 2]
        object["a"] = 3
        object["c"] = 4
        object["b"] = nil
        #expect(object.keys == ["a", "c"])
        #expect(object["a"] == .int(3))
    }
}
