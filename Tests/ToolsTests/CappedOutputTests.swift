import Testing

@testable import Tools

@Suite struct OutputCapTests {
    private func capped(_ bytes: [UInt8], limit: Int) -> CappedOutput {
        var output = CappedOutput(limit: limit)
        // In two pieces, as pipe reads arrive.
        let middle = bytes.count / 2
        bytes[..<middle].withUnsafeBytes { output.append($0) }
        bytes[middle...].withUnsafeBytes { output.append($0) }
        return output
    }

    @Test func outputUpToTheLimitIsKeptWhole() {
        let output = capped(Array("hello".utf8), limit: 5)
        #expect(!output.isCut)
        #expect(output.text == "hello")
    }

    @Test func outputBeyondTheLimitIsCountedAndMarked() {
        let output = capped(Array("hello world".utf8), limit: 5)
        #expect(output.isCut)
        #expect(output.discardedByteCount == 6)
        #expect(output.text == "hello\n[output cut at 5 bytes]")
    }

    @Test func aCutNeverLeavesHalfACharacter() {
        let euro = Array("€".utf8)  // three bytes
        let emoji = Array("😀".utf8)  // four bytes
        #expect(capped(Array("a".utf8) + euro + euro, limit: 3).text == "a\n[output cut at 3 bytes]")
        #expect(capped(Array("a".utf8) + euro + euro, limit: 4).text == "a€\n[output cut at 4 bytes]")
        #expect(capped(emoji + emoji, limit: 7).text == "😀\n[output cut at 7 bytes]")
        #expect(capped(emoji + emoji, limit: 4).text == "😀\n[output cut at 4 bytes]")
    }

    @Test func stderrLinesAreSplitAndTheLastOneIsFlushed() {
        var splitter = StderrLineSplitter()
        var lines: [String] = []
        Array("a\nb".utf8).withUnsafeBytes { splitter.feed($0, emit: { lines.append($0) }) }
        Array("c\n\nd".utf8).withUnsafeBytes { splitter.feed($0, emit: { lines.append($0) }) }
        splitter.finish(emit: { lines.append($0) })
        #expect(lines == ["a", "bc", "", "d"])
    }

    @Test func stderrStopsAtTheBudgetPerCallAndSaysSoOnce() {
        var splitter = StderrLineSplitter()
        var lines: [String] = []
        let line = Array(String(repeating: "x", count: 1000).utf8) + [UInt8(ascii: "\n")]
        for _ in 0..<100 {
            line.withUnsafeBytes { splitter.feed($0, emit: { lines.append($0) }) }
        }
        splitter.finish(emit: { lines.append($0) })
        #expect(lines.count == 65 + 1)
        #expect(lines.last == "[stderr cut at 65536 bytes]")
    }
}
