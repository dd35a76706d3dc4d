import AgentProtocol
import JSON
import Testing

@testable import LLM

@Suite("Reply decoding")
struct ReplyDecoderTests {
    private func decodeChat(_ events: [String], ids: ToolCallIDMap = .init()) throws -> [LLMEvent] {
        var decoder = ReplyDecoder(format: .chat, toolCallIDs: ids)
        var out: [LLMEvent] = []
        for data in events { out += try decoder.decode(event: nil, data: data) }
        return out + (try decoder.endOfStream())
    }

    @Test("chat chunks: text deltas, then done with usage, model and finish reason")
    func chatText() throws {
        let events = try decodeChat([
            #"{"id":"1","object":"chat.completion.chunk","model":"mistral-small-latest","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            #"{"id":"1","choices":[{"index":0,"delta":{"content":"Hello "},"finish_reason":null}]}"#,
            #"{"id":"1","choices":[{"index":0,"delta":{"content":[{"type":"text","text":"world"}]},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5},"p":"abc"}"#,
            "[DONE]",
        ])
        #expect(
            events == [
                .text("Hello "), .text("world"),
                .done(
                    Completion(
                        text: "Hello world", toolCalls: [], finishReason: "stop",
                        usage: Usage(promptTokens: 3, completionTokens: 2, totalTokens: 5),
                        model: "mistral-small-latest")),
            ])
    }

    @Test("tool calls whole in one terminal chunk, ids mapped back to the client's")
    func wholeToolCall() throws {
        let ids = ToolCallIDMap(clientIDs: ["call_1"])
        let wire = ids.wireID(for: "call_1")
        let events = try decodeChat(
            [
                #"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"\#(wire)","function":{"name":"get","arguments":"{\"city\": \"Paris\"}"},"index":0},{"id":"ovsMU69C5","type":"function","function":{"name":"two","arguments":"{}"},"index":1}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#,
                "[DONE]",
            ], ids: ids)
        let calls = [
            ToolCall(id: "call_1", name: "get", arguments: ["city": "Paris"]),
            ToolCall(id: "ovsMU69C5", name: "two", arguments: [:]),
        ]
        #expect(events.prefix(2) == [.toolCall(calls[0]), .toolCall(calls[1])])
        guard case .done(let completion) = events.last else {
            Issue.record("no done")
            return
        }
        #expect(completion.toolCalls == calls)
        #expect(completion.finishReason == "tool_calls")
    }

    @Test("tool calls in pieces are accumulated by index")
    func piecewiseToolCall() throws {
        let events = try decodeChat([
            #"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"abcdefghi","function":{"name":"get","arguments":"{\"ci"},"index":0}]}}]}"#,
            #"{"choices":[{"index":0,"delta":{"tool_calls":[{"function":{"arguments":"ty\": 1}"},"index":0}]},"finish_reason":"tool_calls"}]}"#,
        ])
        #expect(events.first == .toolCall(ToolCall(id: "abcdefghi", name: "get", arguments: ["city": 1])))
    }

    @Test("conversation events: deltas, function calls, done; error is agent_error")
    func conversation() throws {
        var decoder = ReplyDecoder(format: .conversation, toolCallIDs: .init())
        var events: [LLMEvent] = []
        events += try decoder.decode(
            event: "conversation.response.started",
            data: #"{"type":"conversation.response.started","conversation_id":"conv_1"}"#)
        events += try decoder.decode(
            event: "message.output.delta",
            data: #"{"type":"message.output.delta","model":"mistral-medium-2505","role":"assistant","content":"The"}"#)
        events += try decoder.decode(
            event: nil,
            data:
                #"{"type":"function.call.delta","id":"fc_1","name":"f","tool_call_id":"Abc123xyz","arguments":"{\"a\":"}"#
        )
        events += try decoder.decode(
            event: "function.call.delta",
            data:
                #"{"type":"function.call.delta","id":"fc_1","name":"f","tool_call_id":"Abc123xyz","arguments":"true}"}"#
        )
        events += try decoder.decode(
            event: "conversation.response.done",
            data:
                #"{"type":"conversation.response.done","usage":{"prompt_tokens":1,"total_tokens":3,"completion_tokens":2}}"#
        )
        #expect(try decoder.endOfStream().isEmpty, "the done event ended the reply")
        let call = ToolCall(id: "Abc123xyz", name: "f", arguments: ["a": true])
        #expect(
            events == [
                .text("The"), .toolCall(call),
                .done(
                    Completion(
                        text: "The", toolCalls: [call], finishReason: "tool_calls",
                        usage: Usage(promptTokens: 1, completionTokens: 2, totalTokens: 3), model: "mistral-medium-2505"
                    )),
            ])

        var failing = ReplyDecoder(format: .conversation, toolCallIDs: .init())
        #expect {
            try failing.decode(
                event: "conversation.response.error",
                data: #"{"type":"conversation.response.error","message":"boom","code":3000}"#)
        } throws: { ($0 as? ErrorInfo)?.code == .agentError && ($0 as? ErrorInfo)?.message.contains("boom") == true }
    }

    @Test(
        "malformed or unexpected shapes are upstream_protocol",
        arguments: [
            "not json", "[1,2]", #"{"choices":{}}"#, #"{"choices":[{"delta":"x"}]}"#,
            #"{"choices":[{"delta":{"content":5}}]}"#, #"{"usage":"lots"}"#,
            #"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":7}}]}}]}"#,
            #"{"object":"error","message":"overloaded"}"#,
        ]
    )
    func malformed(data: String) {
        var decoder = ReplyDecoder(format: .chat, toolCallIDs: .init())
        #expect { try decoder.decode(event: nil, data: data) } throws: { ($0 as? ErrorInfo)?.code == .upstreamProtocol }
    }

    @Test("a stream that ends before its finish is upstream_protocol")
    func truncated() {
        #expect { try decodeChat([#"{"choices":[{"delta":{"content":"Hi"}}]}"#]) } throws: {
            ($0 as? ErrorInfo)?.code == .upstreamProtocol
        }
        var conversation = ReplyDecoder(format: .conversation, toolCallIDs: .init())
        #expect { try conversation.endOfStream() } throws: { ($0 as? ErrorInfo)?.code == .upstreamProtocol }
    }

    @Test("non-stream chat and conversation responses")
    func wholeResponses() throws {
        var chat = ReplyDecoder(format: .chat, toolCallIDs: ToolCallIDMap(clientIDs: ["c1"]))
        let wire = ToolCallIDMap(clientIDs: ["c1"]).wireID(for: "c1")
        let chatEvents = try chat.decodeResponse(
            Array(
                #"{"id":"x","object":"chat.completion","model":"m","created":1,"usage":{"prompt_tokens":24,"completion_tokens":27,"total_tokens":51},"choices":[{"index":0,"message":{"content":"Hi","tool_calls":[{"id":"\#(wire)","type":"function","function":{"name":"f","arguments":"{}"}}],"prefix":false,"role":"assistant"},"finish_reason":"tool_calls"}]}"#
                    .utf8))
        let call = ToolCall(id: "c1", name: "f", arguments: [:])
        #expect(
            chatEvents == [
                .text("Hi"), .toolCall(call),
                .done(
                    Completion(
                        text: "Hi", toolCalls: [call], finishReason: "tool_calls",
                        usage: Usage(promptTokens: 24, completionTokens: 27, totalTokens: 51), model: "m")),
            ])

        var conversation = ReplyDecoder(format: .conversation, toolCallIDs: .init())
        let conversationEvents = try conversation.decodeResponse(
            Array(
                #"{"object":"conversation.response","conversation_id":"conv_1","outputs":[{"type":"message.output","role":"assistant","content":[{"type":"text","text":"Bonjour"}],"model":"mistral-medium"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#
                    .utf8))
        #expect(
            conversationEvents == [
                .text("Bonjour"),
                .done(
                    Completion(
                        text: "Bonjour", toolCalls: [], finishReason: "stop",
                        usage: Usage(promptTokens: 1, completionTokens: 1, totalTokens: 2), model: "mistral-medium")),
            ])

        var broken = ReplyDecoder(format: .chat, toolCallIDs: .init())
        #expect { try broken.decodeResponse(Array("<html>".utf8)) } throws: {
            ($0 as? ErrorInfo)?.code == .upstreamProtocol
        }
    }
}

@Suite("Reply decoding: plain chat chunks read without a tree")
struct PlainChunkTests {
    private static let plain = [
        #"{"id":"a1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
        #"{"id":"a1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"caf\u00e9 \"q\"\n"},"finish_reason":null,"logprobs":null}]}"#,
        #" {"choices":[{"delta":{"content":"a"}},{"delta":{"content":"b"},"finish_reason":"length"}],"p":"xyz"} "#,
        #"{"choices":[{"index":0,"delta":null,"finish_reason":"stop"}],"model":null}"#,
        #"{"id":"a1","model":"m2","choices":[{"index":0,"delta":{"content":"end"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,"prompt_tokens_details":{"cached_tokens":1}}}"#,
        #"{"choices":[]}"#,
    ]

    /// The same chunk with a member the plain reader does not know, which the tree path ignores.
    private static func withUnknownMember(_ chunk: String) -> String {
        let open = chunk.firstIndex(of: "{")!
        return chunk[...open] + #""x_unknown":0,"# + chunk[chunk.index(after: open)...]
    }

    private static func readsPlain(_ chunk: String) -> Bool {
        let plain = try? JSONReader.read(chunk) { (reader) throws(JSONParseError) in
            try ReplyDecoder.readPlainChunk(&reader, model: "m")
        }
        return plain != nil
    }

    private func decode(_ chunks: [String]) -> (events: [LLMEvent], error: ErrorInfo?) {
        var decoder = ReplyDecoder(format: .chat, toolCallIDs: .init())
        var events: [LLMEvent] = []
        do throws(ErrorInfo) {
            for chunk in chunks { events += try decoder.decode(event: nil, data: chunk) }
            events += try decoder.endOfStream()
            return (events, nil)
        } catch {
            return (events, error)
        }
    }

    @Test("plain chunks decode as the tree path decodes them")
    func plainMatchesTree() {
        for chunk in Self.plain {
            #expect(Self.readsPlain(chunk), "\(chunk)")
            #expect(!Self.readsPlain(Self.withUnknownMember(chunk)))
        }
        let plain = decode(Self.plain)
        let tree = decode(Self.plain.map(Self.withUnknownMember))
        #expect(plain.error == nil)
        #expect(plain.events == tree.events)
        #expect(plain.events.first == .text(#"café "q""# + "\n"))
        guard case .done(let completion)? = plain.events.last else {
            Issue.record("no done")
            return
        }
        #expect(completion.text == #"café "q""# + "\nabend")
        #expect(completion.model == "m2")
        #expect(completion.finishReason == "stop")
        #expect(completion.usage == Usage(promptTokens: 3, completionTokens: 2, totalTokens: 5, cachedTokens: 1))
    }

    /// Each goes to the parser: repeated members, other shapes, errors, malformed JSON.
    @Test(arguments: [
        #"{"choices":[],"choices":[]}"#,
        #"{"choices":[{"delta":{"content":"a","content":"b"}}]}"#,
        #"{"choices":[{"delta":{"content":"a"},"delta":{"content":"b"}}]}"#,
        #"{"choices":[{"delta":{"content":[{"type":"thinking","thinking":[{"type":"text","text":"hm"}]}]}}]}"#,
        #"{"choices":[{"delta":{"tool_calls":[{"id":"abcdefghi","function":{"name":"f","arguments":"{}"},"index":0}]}}]}"#,
        #"{"object":"error","message":"overloaded"}"#,
        #"{"object":"chat.completion.chunk\u0000","choices":[]}"#,
        #"{"choices":[{"delta":{"content":5}}]}"#,
        #"{"choices":[{"delta":"text"}]}"#,
        #"{"choices":[1]}"#,
        #"{"choices":null}"#,
        #"{"model":7,"choices":[]}"#,
        #"{"usage":{"prompt_tokens":1},"usage":null,"choices":[]}"#,
        #"{"choices":[{"finish_reason":1}]}"#,
        #"{"choices":[{"delta":{"content":"a"}}]} x"#,
        #"{"choices":[{"delta":{"content":"a"}}],}"#,
        #"{"\u0063hoices":[]}"#,
    ])
    func unusualChunksGoToTheParser(chunk: String) {
        #expect(!Self.readsPlain(chunk))
    }

    @Test("what the plain reader declines still decodes, or fails, as before")
    func declinedChunksDecode() {
        let thinking = decode([
            #"{"choices":[{"delta":{"content":[{"type":"thinking","thinking":[{"type":"text","text":"hm"}]}]}}]}"#,
            #"{"choices":[{"delta":{"content":"ok"},"finish_reason":"stop"}]}"#,
        ])
        #expect(thinking.events.prefix(2) == [.reasoning("hm"), .text("ok")])
        #expect(decode([#"{"object":"error","message":"overloaded"}"#]).error?.code == .upstreamProtocol)
        #expect(decode([#"{"choices":[{"delta":{"content":5}}]}"#]).error?.code == .upstreamProtocol)
        #expect(decode([#"{"choices":[],"choices":[]}"#]).error?.code == .upstreamProtocol)
        #expect(decode([#"{"usage":7,"choices":[{"delta":{"content":"a"}}]}"#]).error?.code == .upstreamProtocol)
    }
}
