import JSON
import Testing

@testable import MistralEmulator

/// The model's side of a tool loop: `[call:…]` and `[steps:N]` in the user's message, the
/// history checked at every step as Mistral checks it.
@Suite("Tool loops")
struct ToolLoopTests {
    static let prompt =
        #"check [call:disk_free:{"path": "/var [x]"}] [call:grep:{"pattern": "a}b", "n": 2}] [steps:2] please"#
    static let tools: JSONValue = [
        ["type": "function", "function": ["name": "disk_free", "parameters": ["type": "object"]]],
        ["type": "function", "function": ["name": "grep", "parameters": ["type": "object"]]],
    ]

    @Test func callDirectivesParse() throws {
        let directives = Directives(parsing: Self.prompt)
        #expect(
            directives.calls == [
                .init(name: "disk_free", arguments: ["path": "/var [x]"]),
                .init(name: "grep", arguments: ["pattern": "a}b", "n": 2]),
            ])
        #expect(directives.steps == 2)
        #expect(directives.remainingWords == ["check", "please"])
        #expect(directives.reportsEveryResult)

        let nested = Directives(parsing: #"[call:f:{"a": {"b": ["]", "\"}"]}}] [call:g]"#)
        #expect(
            nested.calls == [
                .init(name: "f", arguments: ["a": ["b": ["]", "\"}"]]]), .init(name: "g", arguments: [:]),
            ])
        #expect(nested.remainingWords.isEmpty)

        // Not directives, and so left in the text: JSON that does not parse, or is not an
        // object, or is not closed by `]` at once; no name; a step count under one.
        for text in [
            #"[call:f:{"a":}]"#, #"[call:f:{"a":1} ]"#, #"[call:f:[1]]"#, "[call::{}]", "[steps:0]", "[call:f:{",
        ] {
            let parsed = Directives(parsing: text)
            #expect(parsed.calls.isEmpty && parsed.steps == 1, "\(text)")
            #expect(parsed.remainingWords.joined(separator: " ") == text, "\(text)")
        }
        #expect(Directives(parsing: "[tool:a] [steps:3]").calls == [.init(name: "a", arguments: nil)])
        #expect(!Directives(parsing: "[tool:a]").reportsEveryResult)
    }

    /// The body of a chat step with these messages after the user's.
    static func chat(_ messages: [JSONValue], stream: Bool = false, path: String = "/v1/chat/completions")
        -> JSONValue
    {
        var body: JSONObject = [
            "stream": .bool(stream), "tools": tools,
            "messages": .array([["role": "user", "content": .string(prompt)]] + messages),
        ]
        if path == "/v1/chat/completions" {
            body["model"] = "mistral-small-latest"
        } else {
            body["agent_id"] = .string(conversationAgent)
        }
        return .object(body)
    }

    /// The assistant message of a tool-call turn, as a client sends it back.
    static func assistant(_ calls: [JSONValue]) -> JSONValue {
        ["role": "assistant", "content": "", "tool_calls": .array(calls)]
    }

    static func result(_ call: JSONValue, _ content: String, named: Bool = true) -> JSONValue {
        var message: JSONObject = ["role": "tool", "tool_call_id": call["id"] ?? nil, "content": .string(content)]
        if named { message["name"] = call["function"]?["name"] ?? nil }
        return .object(message)
    }

    static func expectCalls(_ calls: [JSONValue], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(calls.map { $0["function"]?["name"] } == ["disk_free", "grep"], sourceLocation: sourceLocation)
        #expect(
            calls.map { $0["function"]?["arguments"] } == [#"{"path":"/var [x]"}"#, #"{"pattern":"a}b","n":2}"#],
            sourceLocation: sourceLocation)
        #expect(calls.map { $0["index"] } == [0, 1], sourceLocation: sourceLocation)
        #expect(
            calls.allSatisfy { $0["id"]?.stringValue.map(HistoryRules.isToolCallID) == true },
            sourceLocation: sourceLocation)
    }

    @Test(arguments: ["/v1/chat/completions", "/v1/agents/completions"])
    func twoStepsOfCallsThenTheResultsVerbatim(_ path: String) async throws {
        try await withEmulator { server in
            let first = try server.send(path, json: Self.chat([], path: path)).json
            let firstChoice = first?["choices"]?.arrayValue?.first
            #expect(firstChoice?["finish_reason"] == "tool_calls")
            #expect(firstChoice?["message"]?["content"] == "")
            let firstCalls = firstChoice?["message"]?["tool_calls"]?.arrayValue ?? []
            Self.expectCalls(firstCalls)
            try #require(firstCalls.count == 2)

            let afterOne = [
                Self.assistant(firstCalls), Self.result(firstCalls[0], "12G\n"),
                Self.result(firstCalls[1], "a}b: 2 [lines]", named: false),
            ]
            // Step two, streamed: the calls again, whole, in one terminal chunk with the usage.
            let second = chunks(try server.send(path, json: Self.chat(afterOne, stream: true, path: path)))
            #expect(second.count == 2)
            let terminal = second.last?["choices"]?.arrayValue?.first
            #expect(terminal?["finish_reason"] == "tool_calls")
            #expect(second.last?["usage"]?["completion_tokens"] != nil)
            let secondCalls = terminal?["delta"]?["tool_calls"]?.arrayValue ?? []
            Self.expectCalls(secondCalls)
            try #require(secondCalls.count == 2)
            let ids = (firstCalls + secondCalls).compactMap { $0["id"]?.stringValue }
            #expect(Set(ids).count == 4, "every call has its own id")

            let afterTwo =
                afterOne + [
                    Self.assistant(secondCalls), Self.result(secondCalls[1], "none"),
                    Self.result(secondCalls[0], "11G"),
                ]
            let third = try server.send(path, json: Self.chat(afterTwo, path: path)).json
            let answer = third?["choices"]?.arrayValue?.first
            #expect(answer?["finish_reason"] == "stop")
            #expect(answer?["message"]?["tool_calls"] == .null)
            #expect(
                answer?["message"]?["content"]
                    == "Tool results: disk_free=12G\n; grep=a}b: 2 [lines]; grep=none; disk_free=11G")

            // A history that goes wrong between the steps gets Mistral's 400, not the next step.
            let refusals: [(messages: [JSONValue], message: String)] = [
                (
                    afterOne + [Self.assistant(secondCalls), Self.result(secondCalls[0], "11G")],
                    "Not the same number of function calls and responses"
                ),
                (
                    afterOne + [
                        Self.assistant(secondCalls), Self.result(secondCalls[0], "11G"),
                        Self.result(firstCalls[1], "stale"),
                    ],
                    "Unexpected tool call id \(firstCalls[1]["id"]?.stringValue ?? "") in tool results"
                ),
                (
                    [Self.result(firstCalls[0], "12G")],
                    "Unexpected role 'tool' after role 'user'"
                ),
            ]
            for refusal in refusals {
                let response = try server.send(path, json: Self.chat(refusal.messages, path: path))
                #expect(response.status == 400, "\(response.text)")
                #expect(response.json?["message"] == .string(refusal.message), "\(response.text)")
            }
        }
    }

    @Test func stepsRepeatToolDirectivesToo() async throws {
        try await withEmulator { server in
            func step(_ messages: [JSONValue]) throws -> JSONValue? {
                let body: JSONValue = [
                    "model": "mistral-small-latest", "tools": Self.tools,
                    "messages": .array([["role": "user", "content": "go [tool:grep] [steps:2]"]] + messages),
                ]
                return try server.send("/v1/chat/completions", json: body).json?["choices"]?.arrayValue?.first?[
                    "message"]
            }
            let first = try #require(try step([])?["tool_calls"]?.arrayValue?.first)
            let afterOne = [Self.assistant([first]), Self.result(first, "one")]
            let second = try #require(try step(afterOne)?["tool_calls"]?.arrayValue?.first)
            #expect(second["function"]?["arguments"] == "{}")
            let answer = try step(afterOne + [Self.assistant([second]), Self.result(second, "two")])
            #expect(answer?["content"] == "Tool result: two")
        }
    }

    @Test func onlyOfferedToolsAreCalled() async throws {
        try await withEmulator { server in
            let body = chatBody(#"x [call:launch:{"now": true}]"#, stream: false, extra: weatherTool)
            let message = try server.send("/v1/chat/completions", body).json?["choices"]?.arrayValue?.first?["message"]
            #expect(message?["tool_calls"] == .null)
            #expect(message?["content"] == "Echo: x")
        }
    }

    /// Conversations continue with the whole `inputs` again (`store: false`): the entries of
    /// the previous steps, their `function.call` entries and `function.result` entries.
    @Test func conversationLoopOverTwoSteps() async throws {
        func body(_ entries: [JSONValue], stream: Bool) -> JSONValue {
            [
                "agent_id": .string(conversationAgent), "stream": .bool(stream), "store": false,
                "inputs": .array(
                    [["type": "message.input", "role": "user", "content": .string(Self.prompt)]] + entries),
            ]
        }
        func result(_ call: JSONValue, _ text: String) -> JSONValue {
            ["type": "function.result", "tool_call_id": call["tool_call_id"] ?? nil, "result": .string(text)]
        }
        /// A `function.call.delta` event as the entry a client sends back.
        func entry(_ event: JSONValue) -> JSONValue {
            [
                "type": "function.call", "tool_call_id": event["tool_call_id"] ?? nil, "name": event["name"] ?? nil,
                "arguments": event["arguments"] ?? nil,
            ]
        }
        try await withEmulator { server in
            let first = try server.send("/v1/conversations", json: body([], stream: true))
            #expect(eventIssues(first).isEmpty, "\(eventIssues(first))")
            let firstCalls = conversationEvents(first).filter { $0.name == "function.call.delta" }.map(\.data)
            #expect(firstCalls.map { $0["name"] } == ["disk_free", "grep"])
            #expect(firstCalls.map { $0["arguments"] } == [#"{"path":"/var [x]"}"#, #"{"pattern":"a}b","n":2}"#])
            #expect(firstCalls.map { $0["output_index"] } == [0, 1])
            #expect(firstCalls.allSatisfy { $0["tool_call_id"]?.stringValue.map(HistoryRules.isToolCallID) == true })
            try #require(firstCalls.count == 2)

            let afterOne = firstCalls.map(entry) + [result(firstCalls[0], "12G"), result(firstCalls[1], "hit")]
            let second = try server.send("/v1/conversations", json: body(afterOne, stream: false)).json
            #expect(responseSchemas.validate(second ?? nil, against: "ConversationResponse").isEmpty)
            let secondCalls = second?["outputs"]?.arrayValue ?? []
            #expect(secondCalls.map { $0["type"] } == ["function.call", "function.call"])
            #expect(secondCalls.allSatisfy { $0["id"]?.stringValue?.hasPrefix("fc_") == true })
            try #require(secondCalls.count == 2)

            let afterTwo = afterOne + secondCalls.map(entry) + secondCalls.map { result($0, "again") }
            let third = try server.send("/v1/conversations", json: body(afterTwo, stream: true))
            let text = conversationEvents(third).compactMap { $0.data["content"]?.stringValue }.joined()
            #expect(text == "Tool results: disk_free=12G; grep=hit; disk_free=again; grep=again")

            let stale = afterOne + secondCalls.map(entry) + [result(secondCalls[0], "x"), result(firstCalls[1], "y")]
            let refused = try server.send("/v1/conversations", json: body(stale, stream: true))
            #expect(refused.status == 400)
            #expect(refused.json?["object"] == "Error")
            let staleID = firstCalls[1]["tool_call_id"]?.stringValue ?? ""
            #expect(refused.json?["message"] == .string("Unexpected tool call id \(staleID) in tool results"))

            let orphan = try server.send("/v1/conversations", json: body([result(firstCalls[0], "x")], stream: false))
            #expect(orphan.status == 400)
            #expect(orphan.json?["message"] == "Unexpected role 'tool' after role 'user'")
            #expect(orphan.json?["type"] == "invalid_request_message_order")
        }
    }
}
