import SSE
import TestSupport
import Testing

/// Parses `stream` fed in the given pieces, then finishes.
private func parse(_ pieces: [ArraySlice<UInt8>], maxEventBytes: Int = 8 << 20) -> Result<[SSEEvent], SSEError> {
    var parser = SSEParser(maxEventBytes: maxEventBytes)
    return Result { () throws(SSEError) in
        var events: [SSEEvent] = []
        for piece in pieces { events += try parser.feed(piece) }
        return events + (try parser.finish())
    }
}

/// Every way of feeding `stream`: whole, every 2-way split, and byte by byte.
private func everySplit(_ stream: [UInt8]) -> [[ArraySlice<UInt8>]] {
    var splits = [[stream[...]], stream.indices.map { stream[$0..<($0 + 1)] }]
    for cut in 0...stream.count { splits.append([stream[..<cut], stream[cut...]]) }
    return splits
}

/// Asserts that every split of `stream` yields `expected`.
private func expectEvents(
    _ stream: [UInt8], _ expected: Result<[SSEEvent], SSEError>, sourceLocation: SourceLocation = #_sourceLocation
) {
    for pieces in everySplit(stream) {
        let result = parse(pieces)
        #expect(result == expected, "split into \(pieces.map(\.count))", sourceLocation: sourceLocation)
        if result != expected { return }
    }
}

@Suite struct SSEParserTests {
    @Test func mistralChatStreamIsDataOnlyEndingInDone() {
        let chunk1 =
            #"{"id":"f798","object":"chat.completion.chunk","created":1732548656,"model":"mistral-large-latest","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#
        let chunk2 =
            #"{"id":"f798","object":"chat.completion.chunk","created":1732548656,"model":"mistral-large-latest","choices":[{"index":0,"delta":{"content":"izable"},"finish_reason":"length"}],"usage":{"prompt_tokens":34,"total_tokens":134,"completion_tokens":100}}"#
        let stream = "data: \(chunk1)\n\ndata: \(chunk2)\n\ndata: [DONE]\n\n"
        expectEvents(
            Array(stream.utf8), .success([SSEEvent(data: chunk1), SSEEvent(data: chunk2), SSEEvent(data: "[DONE]")]))
        let crlf = stream.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\r\n")
        expectEvents(
            Array(crlf.utf8), .success([SSEEvent(data: chunk1), SSEEvent(data: chunk2), SSEEvent(data: "[DONE]")]))
    }

    @Test func mistralConversationStreamCarriesEventNames() {
        let started =
            #"{"type":"conversation.response.started","conversation_id":"conv_067f2a98c1a773678000ce73a36b785a"}"#
        let delta =
            #"{"type":"message.output.delta","output_index":1,"id":"msg_067f","content_index":0,"model":"mistral-medium-2505","agent_id":"ag_067f","role":"assistant","content":"The"}"#
        let done =
            #"{"type":"conversation.response.done","usage":{"prompt_tokens":18709,"total_tokens":18892,"completion_tokens":183}}"#
        let stream = """
            event: conversation.response.started
            data: \(started)

            event: message.output.delta
            data: \(delta)

            event: conversation.response.done
            data: \(done)


            """
        expectEvents(
            Array(stream.utf8),
            .success([
                SSEEvent(event: "conversation.response.started", data: started),
                SSEEvent(event: "message.output.delta", data: delta),
                SSEEvent(event: "conversation.response.done", data: done),
            ]))
    }

    @Test func everyLineEndingCommentFieldAndSplitGivesTheSameEvents() {
        // BOM; LF, CRLF and lone CR endings; comments; multi-line and empty data; a field
        // without a colon; no space after the colon; id persistence; retry and unknown fields.
        let stream: [UInt8] =
            [0xEF, 0xBB, 0xBF]
            + Array(
                (": keep-alive\n"
                    + "data: one\r\ndata:two\rdata\n\r\n"
                    + "event: named\nid: 7\nretry: 1000\nfoo: bar\ndata:  spaced \n\n"
                    + "event: no-data\n\n"
                    + "data:\n\n"
                    + "id\rdata: é ✓\r\r"
                    + "data: tail").utf8)
        expectEvents(
            stream,
            .success([
                SSEEvent(data: "one\ntwo\n"),
                SSEEvent(event: "named", data: " spaced ", id: "7"),
                SSEEvent(data: "", id: "7"),
                SSEEvent(data: "é ✓", id: ""),
                SSEEvent(data: "tail", id: ""),
            ]))
    }

    /// The line-end scan goes eight bytes at a time: a line end at each offset within a word,
    /// and bytes that differ from CR and LF by one bit or one count, must all come out right.
    @Test func lineEndsAtEveryOffsetWithinAWordAreFound() {
        for length in 0...24 {
            for ending in ["\n", "\r", "\r\n"] {
                let value = String(
                    (0..<length).map {
                        Character(Unicode.Scalar(UInt8([0x0B, 0x0C, 0x0E, 0x09, 0x1A, 0x61][$0 % 6])))
                    })
                let stream = Array("data: \(value)\(ending)\(ending)data: x\(ending)\(ending)".utf8)
                expectEvents(stream, .success([SSEEvent(data: value), SSEEvent(data: "x")]))
            }
        }
    }

    @Test func anLFOpeningAChunkAfterACRIsTheSameLineEnd() throws {
        // CR at the end of one chunk, LF at the start of the next: one line end, no extra blank line.
        var parser = SSEParser()
        #expect(try parser.feed(Array("data: a\r".utf8)).isEmpty)
        #expect(try parser.feed(Array("\ndata: b\r".utf8)).isEmpty)
        #expect(try parser.feed(Array("\r".utf8)) == [SSEEvent(data: "a\nb")])
    }

    @Test func invalidUTF8IsAnError() {
        let stream: [UInt8] = Array("data: ok\n\ndata: ".utf8) + [0xC3, 0x28] + Array("\n\n".utf8)
        for pieces in everySplit(stream) {
            #expect(throws: SSEError.self) { try parse(pieces).get() }
            if case .failure(let error) = parse(pieces) { #expect(error.kind == .invalidUTF8) }
        }
    }

    /// The ASCII check reads eight bytes at a time: a byte of 0x80 or above at any offset of a
    /// word or of the tail must send the data through UTF-8 validation.
    @Test func nonASCIIAtEveryOffsetIsValidatedAsUTF8() throws {
        for length in 0...24 {
            for offset in 0...length {
                let prefix = String(repeating: "a", count: offset)
                let suffix = String(repeating: "b", count: length - offset)
                var parser = SSEParser()
                let good = try parser.feed(Array("data: \(prefix)é\(suffix)\n\n".utf8))
                #expect(good == [SSEEvent(data: "\(prefix)é\(suffix)")], "é at \(offset) of \(length)")
                let bad = Array("data: \(prefix)".utf8) + [0xC3, 0x28] + Array("\(suffix)\n\n".utf8)
                #expect(throws: SSEError(.invalidUTF8, "event stream: invalid UTF-8 in the data field")) {
                    var parser = SSEParser()
                    _ = try parser.feed(bad)
                }
            }
        }
    }

    @Test func anEventLargerThanTheBoundIsAnError() {
        let bound = 64
        let manyLines = Array(String(repeating: "data: 0123456789\n", count: 10).utf8)
        let oneLongLine = Array(("data: " + String(repeating: "x", count: 200)).utf8)
        let fits = Array("data: 0123456789\n\n".utf8)
        for stream in [manyLines, oneLongLine] {
            for pieces in [[stream[...]], stream.indices.map { stream[$0..<($0 + 1)] }] {
                #expect(
                    parse(pieces, maxEventBytes: bound)
                        == .failure(SSEError(.eventTooLarge, "event stream: an event exceeds 64 bytes")))
            }
        }
        #expect(parse([fits[...]], maxEventBytes: bound) == .success([SSEEvent(data: "0123456789")]))
    }

    @Test func arbitraryBytesNeverCrashAndDoNotDependOnTheSplit() {
        var generator = SplitMix64(seed: 42)
        let alphabet = Array("data:event:id: x\r\n\n:é".utf8) + [0xFF, 0x00, 0xC3]
        for _ in 0..<200 {
            let stream = (0..<Int.random(in: 0..<60, using: &generator)).map { _ in
                alphabet.randomElement(using: &generator)!
            }
            let whole = parse([stream[...]])
            for pieces in everySplit(stream) where parse(pieces) != whole {
                Issue.record("stream \(stream) split into \(pieces.map(\.count)) differs")
                return
            }
        }
    }
}
