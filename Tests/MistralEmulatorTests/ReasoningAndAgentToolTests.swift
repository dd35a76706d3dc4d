import Foundation
import JSON
import Testing

@testable import MistralEmulator

/// The conversation response and event schemas of Mistral's spec, from the test fixture.
let responseSchemas: SchemaSet = {
    let url = Bundle.module.url(
        forResource: "mistral-response-schemas", withExtension: "json", subdirectory: "Fixtures")!
    return SchemaSet(document: try! JSONParser.parse(bytes: Array(try! Data(contentsOf: url))))
}()

/// The spec's complaints about a conversation stream's events (`ConversationEvents`: the name in
/// `SSETypes`, the data one of the event schemas with no extra field).
func eventIssues(_ response: RawResponse) -> [String] {
    response.events.flatMap { event in
        let data = (try? JSONParser.parse(event.data)) ?? .string(event.data)
        let wrapped: JSONValue = ["event": event.event.map(JSONValue.string) ?? nil, "data": data]
        return responseSchemas.validate(wrapped, against: "ConversationEvents").map { "\(event.data): \($0)" }
    }
}

/// The parsed data of each event, with its name.
func conversationEvents(_ response: RawResponse) -> [(name: String, data: JSONValue)] {
    response.events.map { ($0.event ?? "", (try? JSONParser.parse($0.data)) ?? nil) }
}

/// Each chat stream chunk's `delta.content`, after the first (role) chunk.
func deltaContents(_ response: RawResponse) -> [JSONValue] {
    chunks(response).dropFirst().compactMap { $0["choices"]?.arrayValue?.first?["delta"]?["content"] }
}

/// A chat stream's answer (strings and text chunks) and thought (thinking chunks' text).
func splitStream(_ contents: [JSONValue]) -> (answer: String, thought: String) {
    var answer = ""
    var thought = ""
    for content in contents {
        if let piece = content.stringValue { answer += piece }
        for chunk in content.arrayValue ?? [] {
            switch chunk["type"] {
            case "text": answer += chunk["text"]?.stringValue ?? ""
            case "thinking":
                thought += (chunk["thinking"]?.arrayValue ?? []).compactMap { $0["text"]?.stringValue }.joined()
            default: break
            }
        }
    }
    return (answer, thought)
}

func thinking(_ text: String, closed: Bool) -> JSONValue {
    ["type": "thinking", "thinking": [["type": "text", "text": .string(text)]], "closed": .bool(closed)]
}

func text(_ text: String) -> JSONValue { ["type": "text", "text": .string(text)] }

let conversationAgent = "ag_0123456789abcdef0123456789abcdef"

@Suite("Reasoning replies")
struct ReasoningTests {
    static let thought = "Thinking: weigh what the user asked"

    @Test func reasoningEffortOrPromptModeMakesTheMessageAThinkingAndATextChunk() async throws {
        let expected: JSONValue = [thinking(Self.thought, closed: true), text("Echo: hi there")]
        try await withEmulator { server in
            for extra in [
                #","reasoning_effort":"medium""#, #","reasoning_effort":"xhigh""#, #","prompt_mode":"reasoning""#,
            ] {
                let chat = try server.send("/v1/chat/completions", chatBody("hi there", stream: false, extra: extra))
                #expect(chat.json?["choices"]?.arrayValue?.first?["message"]?["content"] == expected, "\(extra)")
            }
            let agents = try server.send(
                "/v1/agents/completions",
                #"{"agent_id":"\#(conversationAgent)","reasoning_effort":"low","messages":[{"role":"user","content":"hi there"}]}"#
            )
            #expect(agents.json?["choices"]?.arrayValue?.first?["message"]?["content"] == expected)
            let usage = agents.json?["usage"]
            #expect(usage?["completion_tokens"] == 9)  // six thinking words, three of the answer

            for extra in [#","reasoning_effort":"none""#, #","reasoning_effort":null"#, ""] {
                let plain = try server.send("/v1/chat/completions", chatBody("hi there", stream: false, extra: extra))
                #expect(plain.json?["choices"]?.arrayValue?.first?["message"]?["content"] == "Echo: hi there")
            }
        }
    }

    /// API-NOTES §6: lists of one open thinking chunk; one list closing the thinking and opening
    /// the text; then plain strings, the last with `finish_reason` and `usage`.
    @Test func chatStreamHasTheThreePhases() async throws {
        try await withEmulator { server in
            let response = try server.send(
                "/v1/chat/completions", chatBody("hello brave world", extra: #","reasoning_effort":"high""#))
            let contents = deltaContents(response)
            let thoughts = ["Thinking: ", "weigh ", "what ", "the ", "user "]
            #expect(Array(contents.prefix(5)) == thoughts.map { [thinking($0, closed: false)] })
            #expect(contents[5] == [thinking("asked", closed: true), text("Echo: ")])
            #expect(Array(contents.dropFirst(6)) == ["hello ", "brave ", "world"])
            let parsed = chunks(response)
            #expect(parsed.dropLast().allSatisfy { $0["usage"] == nil })
            #expect(parsed.last?["choices"]?.arrayValue?.first?["finish_reason"] == "stop")
            #expect(parsed.last?["usage"]?["completion_tokens"] == 10)
            #expect(response.events.last?.data == "[DONE]")
            // Text chunks and strings make the answer; thinking chunks the thought, never mixed.
            let split = splitStream(contents)
            #expect(split.answer == "Echo: hello brave world")
            #expect(split.thought == Self.thought)
        }
    }

    @Test func reasoningDirectiveSetsTheThoughtsLength() async throws {
        try await withEmulator { server in
            let response = try server.send("/v1/chat/completions", chatBody("hi [reasoning:2]", stream: false))
            #expect(
                response.json?["choices"]?.arrayValue?.first?["message"]?["content"] == [
                    thinking("Thinking: weigh what", closed: true), text("Echo: hi"),
                ])
            // One word of thinking: phase two straight away.
            let short = deltaContents(try server.send("/v1/chat/completions", chatBody("hi [reasoning:1]")))
            #expect(
                short == [
                    [thinking("Thinking: ", closed: false)], [thinking("weigh", closed: true), text("Echo: ")], "hi",
                ])
        }
    }

    @Test func reasoningBeforeToolCalls() async throws {
        try await withEmulator { server in
            let streamed = try server.send(
                "/v1/chat/completions",
                chatBody("go [tool:get_time] [reasoning:1]", extra: weatherTool))
            let parsed = chunks(streamed)
            #expect(
                deltaContents(streamed) == [[thinking("Thinking: ", closed: false)], [thinking("weigh", closed: true)]])
            let last = parsed.last?["choices"]?.arrayValue?.first
            #expect(last?["finish_reason"] == "tool_calls")
            #expect(last?["delta"]?["tool_calls"]?.arrayValue?.count == 1)
            #expect(parsed.last?["usage"] != nil)

            let whole = try server.send(
                "/v1/chat/completions", chatBody("go [tool:get_time] [reasoning:1]", stream: false, extra: weatherTool))
            let message = whole.json?["choices"]?.arrayValue?.first?["message"]
            #expect(message?["content"] == [thinking("Thinking: weigh", closed: true)])
            #expect(message?["tool_calls"]?.arrayValue?.count == 1)
        }
    }

    @Test func conversationsThinkThroughCompletionArgs() async throws {
        let body =
            #"{"agent_id":"\#(conversationAgent)","stream":true,"completion_args":{"reasoning_effort":"low"},"inputs":"good morning"}"#
        try await withEmulator { server in
            let response = try server.send("/v1/conversations", body)
            #expect(eventIssues(response).isEmpty, "\(eventIssues(response))")
            let deltas = conversationEvents(response).filter { $0.name == "message.output.delta" }.map(\.data)
            #expect(
                deltas.prefix(6).map { $0["content"] } == ["Thinking: ", "weigh ", "what ", "the ", "user "].map {
                    thinking($0, closed: false)
                } + [thinking("asked", closed: true)])
            #expect(deltas.prefix(6).allSatisfy { $0["content_index"] == 0 })
            #expect(deltas.dropFirst(6).map { $0["content"] } == ["Echo: ", "good ", "morning"])
            #expect(deltas.dropFirst(6).allSatisfy { $0["content_index"] == 1 })

            let whole = try server.send(
                "/v1/conversations", body.replacingOccurrences(of: #""stream":true"#, with: #""stream":false"#))
            let output = whole.json?["outputs"]?.arrayValue?.first
            #expect(output?["content"] == [thinking(Self.thought, closed: true), text("Echo: good morning")])
            #expect(responseSchemas.validate(whole.json ?? nil, against: "ConversationResponse").isEmpty)

            // prompt_mode is not a CompletionArgs field; a top-level reasoning_effort is no field at all.
            let misplaced = try server.send(
                "/v1/conversations", #"{"agent_id":"\#(conversationAgent)","reasoning_effort":"low","inputs":"x"}"#)
            #expect(misplaced.status == 422)
        }
    }
}

@Suite("Built-in tools, handoffs and references")
struct AgentToolTests {
    static func body(_ text: String, stream: Bool = true) -> String {
        #"{"agent_id":"\#(conversationAgent)","stream":\#(stream),"store":false,"inputs":\#(JSONValue.string(text).jsonText)}"#
    }

    static func reference(_ number: Int, about topic: String, tool: String = "web_search") -> JSONValue {
        let full = number % 2 == 1
        return [
            "type": "tool_reference", "tool": .string(tool), "title": .string("Result \(number)"),
            "url": .string("https://example.com/result-\(number)"),
            "favicon": full ? "https://example.com/favicon.ico" : nil,
            "description": full ? .string("Emulated result \(number) about \(topic)") : nil,
        ]
    }

    @Test func webSearchStreamsTheExecutionThenTextWithReferences() async throws {
        try await withEmulator { server in
            let response = try server.send("/v1/conversations", Self.body("find cats [builtin:web_search]"))
            #expect(eventIssues(response).isEmpty, "\(eventIssues(response))")
            let events = conversationEvents(response)
            #expect(
                events.map(\.name) == [
                    "conversation.response.started", "tool.execution.started", "tool.execution.delta",
                    "tool.execution.delta", "tool.execution.done", "message.output.delta", "message.output.delta",
                    "message.output.delta", "message.output.delta", "message.output.delta",
                    "conversation.response.done",
                ])
            let started = events[1].data
            let id = try #require(started["id"]?.stringValue)
            #expect(id.hasPrefix("tool_exec_") && id.count == "tool_exec_".count + 32)
            #expect(started["name"] == "web_search")
            #expect(started["arguments"] == "")
            #expect(started["output_index"] == 0)
            let arguments = events[2...3].compactMap { $0.data["arguments"]?.stringValue }.joined()
            #expect(arguments == #"{"query":"find cats"}"#)
            #expect(events[2...4].allSatisfy { $0.data["id"]?.stringValue == id && $0.data["name"] == "web_search" })
            #expect(events[4].data["info"] == ["query": "find cats", "results": 2])

            let deltas = events[5...9].map(\.data)
            #expect(
                deltas.map { $0["content"] } == [
                    "Echo: ", Self.reference(1, about: "find cats"), "find ", Self.reference(2, about: "find cats"),
                    "cats",
                ])
            #expect(deltas.map { $0["content_index"] } == [0, 1, 2, 3, 4])
            #expect(deltas.allSatisfy { $0["output_index"] == 1 && $0["agent_id"] == .string(conversationAgent) })
            let usage = events.last?.data["usage"]
            #expect(usage?["connector_tokens"] == 25)
            #expect(usage?["connectors"] == ["web_search": 25])
        }
    }

    @Test func codeInterpreterReportsItsOutput() async throws {
        try await withEmulator { server in
            let response = try server.send("/v1/conversations", Self.body("compute [builtin:code_interpreter]"))
            #expect(eventIssues(response).isEmpty, "\(eventIssues(response))")
            let done = conversationEvents(response).first { $0.name == "tool.execution.done" }?.data
            #expect(done?["name"] == "code_interpreter")
            #expect(done?["info"]?["code_output"] == "42\n")
            let texts = conversationEvents(response).compactMap { $0.data["content"]?.stringValue }
            #expect(texts.joined() == "Echo: compute")
        }
    }

    @Test func imageGenerationYieldsAToolFileChunk() async throws {
        try await withEmulator { server in
            let response = try server.send("/v1/conversations", Self.body("draw [builtin:image_generation] cats"))
            #expect(eventIssues(response).isEmpty, "\(eventIssues(response))")
            let events = conversationEvents(response)
            let chunks = events.compactMap { $0.data["content"]?.objectValue }
            let file = try #require(chunks.first)
            #expect(file.keys == ["type", "tool", "file_id", "file_name", "file_type"])
            #expect(file["type"] == "tool_file")
            #expect(file["tool"] == "image_generation")
            #expect(file["file_type"] == "png")
            #expect(file["file_id"]?.stringValue.map(SchemaSet.isUUID) == true)
            let done = events.first { $0.name == "tool.execution.done" }?.data
            #expect(done?["info"]?["file_id"] == file["file_id"])
        }
    }

    @Test func handoffComesBeforeTheNextAgentsOutput() async throws {
        try await withEmulator { server in
            let response = try server.send("/v1/conversations", Self.body("bonjour [handoff:french-agent]"))
            #expect(eventIssues(response).isEmpty, "\(eventIssues(response))")
            let events = conversationEvents(response)
            #expect(
                events.map(\.name) == [
                    "conversation.response.started", "agent.handoff.started", "agent.handoff.done",
                    "message.output.delta", "message.output.delta", "conversation.response.done",
                ])
            let started = events[1].data
            let done = events[2].data
            #expect(started["id"] == done["id"])
            #expect(started["previous_agent_id"] == .string(conversationAgent))
            #expect(started["previous_agent_name"] == "emulated-agent")
            #expect(done["next_agent_name"] == "french-agent")
            let next = try #require(done["next_agent_id"]?.stringValue)
            #expect(next.hasPrefix("ag_") && next != conversationAgent)
            #expect(events[3...4].allSatisfy { $0.data["agent_id"] == .string(next) && $0.data["output_index"] == 1 })
        }
    }

    @Test func unknownEventTypeFollowsTheStart() async throws {
        try await withEmulator { server in
            let response = try server.send("/v1/conversations", Self.body("hi [unknown-event]"))
            let events = conversationEvents(response)
            #expect(
                events.map(\.name).prefix(3) == [
                    "conversation.response.started", "conversation.future.thing", "message.output.delta",
                ])
            #expect(events[1].data["type"] == "conversation.future.thing")
            // The spec refuses it, which is what makes it unknown; every other event conforms.
            let refused = eventIssues(response)
            #expect(!refused.isEmpty && refused.allSatisfy { $0.contains("conversation.future.thing") })
            #expect(conversationEvents(response).compactMap { $0.data["content"]?.stringValue }.joined() == "Echo: hi")
        }
    }

    @Test func nonStreamedConversationReturnsEveryOutput() async throws {
        try await withEmulator { server in
            let response = try server.send(
                "/v1/conversations",
                Self.body("see [handoff:scout] [builtin:web_search] [builtin:code_interpreter] [cite:1]", stream: false)
            )
            let json = try #require(response.json)
            #expect(responseSchemas.validate(json, against: "ConversationResponse").isEmpty)
            let outputs = json["outputs"]?.arrayValue ?? []
            #expect(
                outputs.map { $0["type"] } == ["agent.handoff", "tool.execution", "tool.execution", "message.output"])
            #expect(outputs[0]["next_agent_name"] == "scout")
            #expect(outputs[1]["name"] == "web_search")
            #expect(outputs[1]["arguments"] == #"{"query":"see"}"#)
            #expect(outputs[2]["info"]?["code_output"] == "42\n")
            #expect(outputs[1...3].allSatisfy { $0["agent_id"] == outputs[0]["next_agent_id"] })
            #expect(outputs[3]["content"] == [text("Echo: "), Self.reference(1, about: "see"), text("see")])
            #expect(json["usage"]?["connector_tokens"] == 50)
            #expect(json["usage"]?["connectors"] == ["web_search": 25, "code_interpreter": 25])

            let plain = try server.send("/v1/conversations", Self.body("plain", stream: false)).json
            #expect(plain?["usage"]?["connector_tokens"] == .null)
        }
    }

    @Test func chatCitesBetweenTextPieces() async throws {
        try await withEmulator { server in
            let whole = try server.send("/v1/chat/completions", chatBody("a b [cite:3]", stream: false))
            #expect(
                whole.json?["choices"]?.arrayValue?.first?["message"]?["content"] == [
                    text("Echo: "), Self.reference(1, about: "a b"), text("a "), Self.reference(2, about: "a b"),
                    text("b"), Self.reference(3, about: "a b"),
                ])
            let streamed = deltaContents(try server.send("/v1/chat/completions", chatBody("a b [cite:3]")))
            #expect(
                streamed == [
                    "Echo: ", [Self.reference(1, about: "a b")], "a ", [Self.reference(2, about: "a b")], "b",
                    [Self.reference(3, about: "a b")],
                ])
            // Built-in tools and handoffs belong to agents in conversations: a chat ignores them.
            let ignored = try server.send(
                "/v1/chat/completions", chatBody("x [builtin:web_search] [handoff:y]", stream: false))
            #expect(ignored.json?["choices"]?.arrayValue?.first?["message"]?["content"] == "Echo: x")
        }
    }

    @Test func promptCacheKeyReportsCachedTokens() async throws {
        let messages =
            #""messages":[{"role":"user","content":"one two three"},{"role":"assistant","content":"four"},{"role":"user","content":"five"}]"#
        try await withEmulator { server in
            let chat = try server.send(
                "/v1/chat/completions", #"{"model":"mistral-small-latest","prompt_cache_key":"k",\#(messages)}"#)
            #expect(
                chat.json?["usage"] == [
                    "prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7,
                    "prompt_tokens_details": ["cached_tokens": 4],
                ])
            let agents = try server.send(
                "/v1/agents/completions",
                #"{"agent_id":"\#(conversationAgent)","stream":true,"prompt_cache_key":"k",\#(messages)}"#)
            #expect(chunks(agents).last?["usage"]?["prompt_tokens_details"] == ["cached_tokens": 4])
            let uncached = try server.send("/v1/chat/completions", #"{"model":"mistral-small-latest",\#(messages)}"#)
            #expect(uncached.json?["usage"]?["prompt_tokens_details"] == nil)
        }
    }

    @Test func rateLimitHeadersOnSuccessAndOn429() async throws {
        try await withEmulator { server in
            let replies = [
                try server.send("/v1/chat/completions", chatBody("hi there", stream: false)),
                try server.send("/v1/chat/completions", chatBody("hi there")),
                try server.send("/v1/conversations", Self.body("hi there")),
            ]
            for reply in replies {
                #expect(reply.status == 200)
                #expect(reply.header("x-ratelimit-limit-tokens-minute") == "2000000")
                #expect(reply.header("x-ratelimit-remaining-tokens-minute") == "1999995")
                #expect(reply.header("x-ratelimit-tokens-query-cost") == "5")
                #expect(reply.header("x-ratelimit-limit-req-minute") == "1000")
                #expect(reply.header("x-ratelimit-remaining-req-minute") == "999")
            }
            let limited = try server.send("/v1/chat/completions", chatBody("hi [fault:429:retry=3]"))
            #expect(limited.status == 429)
            #expect(limited.header("retry-after") == "3")
            #expect(limited.header("x-ratelimit-remaining-tokens-minute") == "0")
            #expect(limited.header("x-ratelimit-remaining-req-minute") == "0")
            #expect(limited.header("x-ratelimit-limit-req-minute") == "1000")
        }
    }
}
