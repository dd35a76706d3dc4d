import AgentProtocol
import JSON
import Testing

@Suite struct RequestDecoderTests {
    private let agentSocket = RequestDecoder(makeID: { .string("assigned") }, acceptsCommands: false)
    private let controlSocket = RequestDecoder(makeID: { .string("assigned") }, acceptsCommands: true)

    private func decode(_ line: String, on decoder: RequestDecoder? = nil) -> Result<WireCommand, WireError> {
        (decoder ?? agentSocket).decode(Array(line.utf8))
    }

    private func chat(_ line: String) throws -> ChatRequest {
        guard case .success(.chat(let request)) = decode(line) else {
            throw DecodingFailed(line: line)
        }
        return request
    }

    private func rejection(_ line: String, on decoder: RequestDecoder? = nil) -> WireError? {
        guard case .failure(let error) = decode(line, on: decoder) else { return nil }
        return error
    }

    private struct DecodingFailed: Error { var line: String }

    @Test func inputBecomesATrailingUserMessageAndStreamingIsTheDefault() throws {
        let request = try chat(#"{"id":"q1","messages":[{"role":"system","content":"Be brief."}],"input":"Hi"}"#)
        #expect(request.id == .string("q1"))
        #expect(
            request.messages == [
                ChatMessage(role: .system, content: "Be brief."), ChatMessage(role: .user, content: "Hi"),
            ])
        #expect(request.stream)
        #expect(request.options == nil)
    }

    @Test func sessionNamesOfThePatternAreKeptUpTo128Bytes() throws {
        #expect(try chat(#"{"input":"Hi"}"#).session == nil)
        #expect(try chat(#"{"input":"Hi","session":"s1.A_b:c-9"}"#).session == "s1.A_b:c-9")
        let longest = String(repeating: "x", count: 128)
        #expect(try chat(#"{"input":"Hi","session":"\#(longest)"}"#).session == longest)
        #expect(rejection(#"{"input":"Hi","session":"\#(longest)x"}"#)?.info.message.hasPrefix("session:") == true)
    }

    @Test func aRequestWithoutAnIDGetsOneAssigned() throws {
        #expect(try chat(#"{"input":"Hi"}"#).id == .string("assigned"))
        #expect(try chat(#"{"id":7,"input":"Hi"}"#).id == .int(7))
    }

    @Test func bothToolCallShapesAreAccepted() throws {
        let request = try chat(
            #"""
            {"messages":[{"role":"user","content":"q"},
             {"role":"assistant","tool_calls":[{"id":"c1","name":"f","arguments":{"a":1}},
               {"id":"c2","type":"function","function":{"name":"g","arguments":"{\"b\":2}"}}]},
             {"role":"tool","tool_call_id":"c1","content":"one"},{"role":"tool","tool_call_id":"c2","content":"two"}]}
            """#.replacing("\n", with: ""))
        #expect(
            request.messages[1].toolCalls == [
                ToolCall(id: "c1", name: "f", arguments: ["a": 1]),
                ToolCall(id: "c2", name: "g", arguments: .string(#"{"b":2}"#)),
            ])
        #expect(request.messages[2].toolCallID == "c1")
    }

    @Test func contentListsAreMistralsChunks() throws {
        let png = "data:image/png;base64,iVBORw0KGgo="
        let request = try chat(
            #"""
            {"messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},
             {"type":"image_url","image_url":"https://example.com/a.png"},
             {"type":"image_url","image_url":{"url":"\#(png)","detail":"low"}},
             {"type":"document_url","document_url":"https://example.com/a.pdf","document_name":"a.pdf"},
             {"type":"input_audio","input_audio":"UklGRg=="},{"type":"file","file_id":"3f1b2c4d-0000-4000-8000-00000000abcd"}]}]}
            """#.replacing("\n", with: ""))
        #expect(
            request.messages[0].content
                == .chunks([
                    .text("What is this?"), .imageURL(url: "https://example.com/a.png", detail: nil),
                    .imageURL(url: png, detail: "low"),
                    .documentURL(url: "https://example.com/a.pdf", name: "a.pdf"), .inputAudio("UklGRg=="),
                    .file(id: "3f1b2c4d-0000-4000-8000-00000000abcd"),
                ]))
        #expect(request.messages[0].content?.text == "What is this?")
    }

    @Test(arguments: [
        (
            #"[{"type":"video","video":"x"}]"#,
            "messages[0].content[0].type: \"video\" is not a chunk type agentd sends (text, image_url, document_url, input_audio, file)"
        ),
        (
            #"[{"text":"x"}]"#,
            "messages[0].content[0].type: required, one of text, image_url, document_url, input_audio, file"
        ),
        (#"["x"]"#, "messages[0].content[0]: must be an object, got string"),
        (#"[{"type":"text","text":"x","lang":"en"}]"#, "messages[0].content[0].lang: unknown field for a text chunk"),
        (
            #"[{"type":"text","text":"a"},{"type":"image_url","image_url":"http://example.com/a.png"}]"#,
            "messages[0].content[1].image_url: must be an https URL or a base64 data: URL"
        ),
        (
            #"[{"type":"image_url","image_url":"data:text/plain;base64,aGk="}]"#,
            "messages[0].content[0].image_url: a data: URL must be data:image/...;base64,..."
        ),
        (
            #"[{"type":"image_url","image_url":"data:image/png;base64,a$b="}]"#,
            "messages[0].content[0].image_url: is not well-formed base64"
        ),
        (
            #"[{"type":"image_url","image_url":"data:image/png;base64,abc"}]"#,
            "messages[0].content[0].image_url: is not well-formed base64 (its length is not a multiple of 4)"
        ),
        (
            #"[{"type":"image_url","image_url":{"url":"https://e.com/a.png","detail":"max"}}]"#,
            "messages[0].content[0].image_url.detail: must be low, high or auto"
        ),
        (
            #"[{"type":"image_url","image_url":{"href":"https://e.com/a.png"}}]"#,
            "messages[0].content[0].image_url.href: unknown field (url, detail)"
        ),
        (#"[{"type":"document_url"}]"#, "messages[0].content[0].document_url: required, a string"),
        (
            #"[{"type":"input_audio","input_audio":"not base64!"}]"#,
            "messages[0].content[0].input_audio: is not well-formed base64 (its length is not a multiple of 4)"
        ),
        (
            #"[{"type":"file","file_id":"report.pdf"}]"#,
            "messages[0].content[0].file_id: must be the UUID Mistral gave the uploaded file"
        ),
    ])
    func badChunksAreRejectedNamingTheirIndex(content: String, message: String) {
        let error = rejection(#"{"id":1,"messages":[{"role":"user","content":"# + content + "}]}")
        #expect(error?.info.code == .badRequest)
        #expect(error?.info.message == message)
    }

    @Test func atMostEightImagesAndTenMiBInline() {
        let image = #"{"type":"image_url","image_url":"https://example.com/a.png"}"#
        let nine = Array(repeating: image, count: 9).joined(separator: ",")
        #expect(
            rejection(#"{"id":1,"messages":[{"role":"user","content":[\#(nine)]}]}"#)?.info.message
                == "messages[0].content[8]: more than 8 images in one request")
        let eight = Array(repeating: image, count: 8).joined(separator: ",")
        #expect(rejection(#"{"id":1,"messages":[{"role":"user","content":[\#(eight)]}]}"#) == nil)
        let big = String(repeating: "A", count: (10 << 20) / 3 * 4 + 4)
        let error = rejection(
            #"{"id":1,"input":"x","messages":[{"role":"user","content":[{"type":"image_url","image_url":"data:image/png;base64,\#(big)"}]}]}"#
        )
        #expect(error?.info.message.hasPrefix("messages[0].content[0].image_url: holds ") == true)
        #expect(error?.info.message.hasSuffix("at most 10485760 (10 MiB) may be sent inline") == true)
    }

    @Test func systemMessagesTakeTextChunksOnly() {
        #expect(
            rejection(
                #"{"id":1,"messages":[{"role":"system","content":[{"type":"image_url","image_url":"https://e.com/a.png"}]},{"role":"user","content":"x"}]}"#
            )?
            .info.message == "messages[0].content[0]: a system message takes text chunks only")
    }

    @Test func cancelLinesNameTheRequestAndNothingElse() {
        guard case .success(.cancel(let id)) = decode(#"{"cancel":"q1"}"#) else {
            Issue.record("not a cancel")
            return
        }
        #expect(id == .string("q1"))
        #expect(rejection(#"{"cancel":"q1","input":"x"}"#)?.info.message == "input: not allowed in a cancel line")
    }

    @Test func commandsAreForTheControlSocketOnly() {
        #expect(
            rejection(#"{"id":1,"command":"list"}"#)?.info.message == "command: only the control socket takes commands")
        guard case .success(.control(let id, let command, _)) = decode(#"{"id":1,"command":"list"}"#, on: controlSocket)
        else {
            Issue.record("not a command")
            return
        }
        #expect(id == .int(1) && command == "list")
    }

    @Test(arguments: [
        (#"[1]"#, nil as RequestID?, "request must be a JSON object, got array"),
        (#"{"id":1.5,"input":"x"}"#, nil, "id: must be a string or an integer, got number"),
        (#"{"id":"a"}"#, .string("a"), "messages or input: a request needs at least one of them"),
        (#"{"id":"a","messages":[]}"#, .string("a"), "messages: is empty and there is no input"),
        (
            #"{"id":"a","input":"x","extra":1}"#, .string("a"),
            "extra: unknown field (expected one of id, input, messages, options, session, stream)"
        ),
        (
            #"{"id":"a","messages":[{"role":"robot","content":"x"}]}"#, .string("a"),
            #"messages[0].role: "robot" is not one of system, user, assistant, tool"#
        ),
        (
            #"{"id":"a","messages":[{"role":"tool","content":"x"}]}"#, .string("a"),
            "messages[0].tool_call_id: required on tool messages"
        ),
        (
            #"{"id":"a","messages":[{"role":"user","content":"x","tool_calls":[]}]}"#, .string("a"),
            "messages[0].tool_calls: only assistant messages carry tool calls"
        ),
        (#"{"id":"a","input":"x","stream":"yes"}"#, .string("a"), "stream: must be true or false, got string"),
        (#"{"id":"a","input":"x","options":[]}"#, .string("a"), "options: must be an object, got array"),
        (#"{"id":"a","input":"x","session":7}"#, .string("a"), "session: must be a string, got number"),
        (#"{"id":"a","input":"x","session":""}"#, .string("a"), "session: must match ^[A-Za-z0-9._:-]{1,128}$"),
        (#"{"id":"a","input":"x","session":"a b"}"#, .string("a"), "session: must match ^[A-Za-z0-9._:-]{1,128}$"),
    ])
    func badLinesAreRejectedNamingTheField(line: String, id: RequestID?, message: String) {
        let error = rejection(line)
        #expect(error?.id == id)
        #expect(error?.info.code == .badRequest)
        #expect(error?.info.message == message)
    }

    @Test func notJSONIsABadRequestWithoutAnID() {
        let error = rejection("{nope")
        #expect(error?.id == nil)
        #expect(error?.info.message.hasPrefix("request is not valid JSON") == true)
    }
}

@Suite struct ReceivedEventTests {
    @Test func eachEncodedEventDecodesToItsKind() throws {
        let call = ToolCall(id: "c1", name: "f", arguments: .string(#"{"a":1}"#))
        let start = try #require(
            ReceivedEvent(Event.start(id: .int(1), agent: "s", mode: "agent", modelKey: "agent_id", model: "ag_1")))
        #expect(start.kind == .start(agent: "s", mode: "agent", model: "ag_1"))
        #expect(ReceivedEvent(Event.delta(id: .int(1), text: "hi"))?.kind == .delta(text: "hi"))
        #expect(
            ReceivedEvent(Event.toolCall(id: .int(1), call: call))?.kind
                == .toolCall(ToolCall(id: "c1", name: "f", arguments: ["a": 1])))
        let done = try #require(
            ReceivedEvent(
                Event.done(
                    id: .string("q"), text: "t", toolCalls: [call], finishReason: "tool_calls",
                    usage: ["total_tokens": 3],
                    model: "m")))
        #expect(done.id == .string("q"))
        #expect(done.isTerminal)
        #expect(
            done.kind
                == .done(
                    .init(
                        text: "t", toolCalls: [ToolCall(id: "c1", name: "f", arguments: ["a": 1])],
                        finishReason: "tool_calls", usage: ["total_tokens": 3], model: "m")))
        let info = ErrorInfo(code: .timeout, message: "late", retryable: true)
        let error = try #require(ReceivedEvent(Event.error(id: nil, info)))
        #expect(error.kind == .error(info) && error.id == nil && error.isTerminal)
        let result = try #require(ReceivedEvent(Event.result(id: .int(2), key: "agents", value: [])))
        #expect(result.kind == .result(["agents": []]))
    }

    @Test func unknownTypesAreSkippableAndNotTerminal() throws {
        let future = try #require(ReceivedEvent(["id": 1, "type": "hologram"]))
        #expect(future.kind == .other(type: "hologram"))
        #expect(!future.isTerminal)
        #expect(ReceivedEvent(["id": 1]) == nil)
        #expect(ReceivedEvent("text") == nil)
    }
}
