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

    @Test func objectSubscriptReplacesAppendsAndRemoves() {
        var object: JSONObject = ["a": 1, "b": 2]
        object["a"] = 3
        object["c"] = 4
        object["b"] = nil
        #expect(object.keys == ["a", "c"])
        #expect(object["a"] == .int(3))
    }
}
