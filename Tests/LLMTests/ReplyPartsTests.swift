import AgentProtocol
import JSON
import Testing

@testable import LLM

/// Reasoning, references, files, built-in tool runs and handoffs (API-NOTES §6), decoded from
/// the shapes Mistral sends, and the 2026 options placed where each endpoint takes them.
@Suite("Reply parts and 2026 options")
struct ReplyPartsTests {
    private func decode(_ format: PreparedRequest.ReplyFormat, _ events: [(String?, String)]) throws -> [LLMEvent] {
        var decoder = ReplyDecoder(format: format, toolCallIDs: .init())
        var out: [LLMEvent] = []
        for (name, data) in events { out += try decoder.decode(event: name, data: data) }
        return out + (try decoder.endOfStream())
    }

    private func completion(_ events: [LLMEvent]) -> Completion? {
        guard case .done(let completion)? = events.last else { return nil }
        return completion
    }

    @Test("chat: the three phases of a reasoning stream become reasoning, then text")
    func threePhases() throws {
        let events = try decode(
            .chat,
            [
                (
                    nil,
                    #"{"choices":[{"index":0,"delta":{"role":"assistant","content":[{"type":"thinking","thinking":[{"type":"text","text":"Thinking: the user "}],"closed":false}]},"finish_reason":null}]}"#
                ),
                (
                    nil,
                    #"{"choices":[{"index":0,"delta":{"content":[{"type":"thinking","thinking":[{"type":"text","text":"wants a greeting."}],"closed":true},{"type":"text","text":"Hello"}]},"finish_reason":null}]}"#
                ),
                (
                    nil,
                    #"{"choices":[{"index":0,"delta":{"content":" there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":9,"total_tokens":14,"prompt_tokens_details":{"cached_tokens":4}}}"#
                ),
                (nil, "[DONE]"),
            ])
        #expect(
            Array(events.dropLast())
                == [
                    .reasoning("Thinking: the user "), .reasoning("wants a greeting."), .text("Hello"), .text(" there"),
                ])
        let done = try #require(completion(events))
        #expect(done.text == "Hello there")
        #expect(done.reasoning == "Thinking: the user wants a greeting.")
        #expect(done.usage.cachedTokens == 4)
    }

    @Test("chat, not streamed: a thinking chunk and references in the message content")
    func wholeReply() throws {
        var decoder = ReplyDecoder(format: .chat, toolCallIDs: .init(), rateLimitsRemaining: ["req-minute": 59])
        let body = #"""
            {"id":"x","object":"chat.completion","model":"m","created":1,"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3},
             "choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":[
               {"type":"thinking","thinking":[{"type":"text","text":"Hmm."},{"type":"tool_reference","tool":"web_search","title":"In thought","url":null}]},
               {"type":"text","text":"Paris"},{"type":"tool_reference","tool":"web_search","title":"Paris","url":"https://fr.wikipedia.org/wiki/Paris","favicon":null,"description":"Capital"},
               {"type":"text","text":" is the capital."}]}}]}
            """#
        let events = try decoder.decodeResponse(Array(body.utf8))
        let inThought = Citation(tool: "web_search", title: "In thought")
        let paris = Citation(
            tool: "web_search", title: "Paris", url: "https://fr.wikipedia.org/wiki/Paris", description: "Capital")
        #expect(
            Array(events.dropLast()) == [
                .reasoning("Hmm."), .citation(inThought), .text("Paris"), .citation(paris), .text(" is the capital."),
            ])
        let done = try #require(completion(events))
        #expect(done.text == "Paris is the capital.")
        #expect(done.citations == [inThought, paris])
        #expect(done.rateLimitsRemaining == ["req-minute": 59])
    }

    @Test("conversations: built-in tool runs, references, files and handoffs in order; unknown events ignored")
    func conversationEvents() throws {
        let events = try decode(
            .conversation,
            [
                (
                    "conversation.response.started",
                    #"{"type":"conversation.response.started","conversation_id":"conv_1"}"#
                ),
                ("conversation.future.thing", #"{"type":"conversation.future.thing","whatever":1}"#),
                (
                    "tool.execution.started",
                    #"{"type":"tool.execution.started","id":"te_1","name":"web_search","arguments":""}"#
                ),
                (
                    "tool.execution.delta",
                    #"{"type":"tool.execution.delta","id":"te_1","name":"web_search","arguments":"{\"query\":"}"#
                ),
                (
                    "tool.execution.done",
                    #"{"type":"tool.execution.done","id":"te_1","name":"web_search","info":{"results":2}}"#
                ),
                (
                    "agent.handoff.started",
                    #"{"type":"agent.handoff.started","id":"h1","previous_agent_id":"ag_1","previous_agent_name":"triage"}"#
                ),
                (
                    "agent.handoff.done",
                    #"{"type":"agent.handoff.done","id":"h1","next_agent_id":"ag_2","next_agent_name":"expert"}"#
                ),
                (
                    "message.output.delta",
                    #"{"type":"message.output.delta","content":{"type":"thinking","thinking":[{"type":"text","text":"Let me see."}]}}"#
                ),
                ("message.output.delta", #"{"type":"message.output.delta","content":"It is sunny"}"#),
                (
                    "message.output.delta",
                    #"{"type":"message.output.delta","content":{"type":"tool_reference","tool":"web_search","title":"Weather"}}"#
                ),
                (
                    "message.output.delta",
                    #"{"type":"message.output.delta","content":{"type":"tool_file","tool":"image_generation","file_id":"f-1","file_name":"sun.png","file_type":"png"}}"#
                ),
                (
                    "conversation.response.done",
                    #"{"type":"conversation.response.done","usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2,"connector_tokens":25}}"#
                ),
            ])
        let sun = GeneratedFile(fileID: "f-1", fileName: "sun.png", fileType: "png", tool: "image_generation")
        #expect(
            Array(events.dropLast()) == [
                .toolExecution(ToolExecution(id: "te_1", name: "web_search", state: .started, arguments: "")),
                .toolExecution(ToolExecution(id: "te_1", name: "web_search", state: .delta, arguments: #"{"query":"#)),
                .toolExecution(ToolExecution(id: "te_1", name: "web_search", state: .done, info: ["results": 2])),
                .handoff(Handoff(state: .started, id: "h1", agentID: "ag_1", agentName: "triage")),
                .handoff(Handoff(state: .done, id: "h1", agentID: "ag_2", agentName: "expert")),
                .reasoning("Let me see."), .text("It is sunny"),
                .citation(Citation(tool: "web_search", title: "Weather")),
                .file(sun),
            ])
        let done = try #require(completion(events))
        #expect(done.files == [sun])
        #expect(done.usage.connectorTokens == 25)
    }

    @Test("an unknown conversation event is counted, not an error")
    func unknownEventsAreCounted() throws {
        var decoder = ReplyDecoder(format: .conversation, toolCallIDs: .init())
        _ = try decoder.decode(event: "conversation.future.thing", data: #"{"type":"conversation.future.thing"}"#)
        _ = try decoder.decode(event: "conversation.future.thing", data: #"{"type":"conversation.future.thing"}"#)
        #expect(decoder.ignoredEvents == ["conversation.future.thing": 2])
    }

    private let reasoningOptions = GenerationOptions(
        responseFormat: .jsonObject, reasoningEffort: .high, promptMode: "reasoning", prediction: "draft",
        promptCacheKey: "user-42")

    @Test("reasoning options: top level for chat and agents completions")
    func topLevelOptions() throws {
        for upstream in [Upstream.chatCompletions(model: "m"), .agentCompletions(agentID: "ag_1")] {
            let body = try #require(
                try PreparedRequest(LLMRequest(upstream: upstream, options: reasoningOptions, messages: [user("q")]))
                    .body.objectValue)
            #expect(body["reasoning_effort"] == "high")
            #expect(body["prompt_mode"] == "reasoning")
            #expect(body["prediction"] == ["type": "content", "content": "draft"])
            #expect(body["prompt_cache_key"] == "user-42")
            #expect(body["response_format"] == ["type": "json_object"])
        }
    }

    @Test("reasoning options: completion_args for conversations, without what CompletionArgs lacks")
    func conversationOptions() throws {
        let body = try #require(
            try PreparedRequest(
                LLMRequest(upstream: .conversations(agentID: "ag_1"), options: reasoningOptions, messages: [user("q")])
            ).body.objectValue)
        let arguments = try #require(body["completion_args"]?.objectValue)
        #expect(arguments["reasoning_effort"] == "high")
        #expect(arguments["prediction"] == ["type": "content", "content": "draft"])
        #expect(arguments["prompt_mode"] == nil && arguments["prompt_cache_key"] == nil)
        #expect(body["prompt_mode"] == nil && body["prompt_cache_key"] == nil)
    }

    @Test("content chunks are sent in Mistral's shapes; a function result is their text")
    func chunkedContent() throws {
        let image: MessageContent = .chunks([
            .text("What is this?"), .imageURL(url: "https://e.com/a.png", detail: "low"),
            .documentURL(url: "https://e.com/a.pdf", name: "a.pdf"),
        ])
        let messages = [
            ChatMessage(role: .user, content: image),
            ChatMessage(role: .assistant, toolCalls: [ToolCall(id: "c1", name: "f", arguments: [:])]),
            ChatMessage(role: .tool, content: .chunks([.text("sunny"), .text(" and warm")]), toolCallID: "c1"),
            ChatMessage(role: .user, content: .chunks([])),
        ]
        let chat = try #require(
            try PreparedRequest(LLMRequest(upstream: .chatCompletions(model: "m"), messages: messages)).body[
                "messages"]?
                .arrayValue)
        #expect(
            chat[0]["content"] == [
                ["type": "text", "text": "What is this?"],
                ["type": "image_url", "image_url": ["url": "https://e.com/a.png", "detail": "low"]],
                ["type": "document_url", "document_url": "https://e.com/a.pdf", "document_name": "a.pdf"],
            ])
        #expect(chat[2]["content"] == [["type": "text", "text": "sunny"], ["type": "text", "text": " and warm"]])
        #expect(chat.last?["content"] == "", "an empty list is an empty text")
        let inputs = try #require(
            try PreparedRequest(LLMRequest(upstream: .conversations(agentID: "ag_1"), messages: messages))
                .body["inputs"]?.arrayValue)
        #expect(inputs[0]["content"] == chat[0]["content"])
        #expect(inputs.first { $0["type"] == "function.result" }?["result"] == "sunny and warm")
    }
}
