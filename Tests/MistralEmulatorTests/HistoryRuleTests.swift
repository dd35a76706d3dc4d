import JSON
import Testing

@testable import MistralEmulator

@Suite("mistral-common's history rules with Mistral's messages")
struct HistoryRuleTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var body: String
        var message: String
        var type = "invalid_request_error"
        var code: JSONValue = nil
        var status = 400
        var path = "/v1/chat/completions"
        var testDescription: String { name }
    }

    static func chat(_ messages: String, extra: String = "") -> String {
        #"{"model":"mistral-small-latest","messages":[\#(messages)]\#(extra)}"#
    }

    static let user = #"{"role":"user","content":"hi"}"#
    static let assistant = #"{"role":"assistant","content":"hello"}"#
    static func calls(_ ids: String...) -> String {
        let list = ids.map { #"{"id":"\#($0)","type":"function","function":{"name":"f","arguments":"{}"}}"# }
        return #"{"role":"assistant","content":"","tool_calls":[\#(list.joined(separator: ","))]}"#
    }
    static func result(_ id: String) -> String { #"{"role":"tool","content":"r","tool_call_id":"\#(id)"}"# }
    static let order = "invalid_request_message_order"

    static let cases: [Case] = [
        Case(name: "empty", body: chat(""), message: "Conversation must have at least one message"),
        Case(
            name: "single assistant", body: chat(assistant),
            message: "Conversation must start with a user message or system message"),
        Case(
            name: "trailing assistant", body: chat("\(user),\(assistant)"),
            message: "Expected last role User or Tool (or Assistant with prefix True) for serving but got assistant"),
        Case(
            name: "prefix not last",
            body: chat(#"\#(user),{"role":"assistant","content":"So","prefix":true},\#(user)"#),
            message: "Assistant message with prefix True must be last message"),
        Case(
            name: "user after tool", body: chat("\(user),\(calls("abcDEF123")),\(result("abcDEF123")),\(user)"),
            message: "Unexpected role 'user' after role 'tool'", type: order, code: "3230"),
        Case(
            name: "tool after user", body: chat("\(user),\(result("abcDEF123"))"),
            message: "Unexpected role 'tool' after role 'user'", type: order, code: "3230"),
        Case(
            name: "late system", body: chat(#"\#(user),\#(assistant),{"role":"system","content":"s"},\#(user)"#),
            message: "Unexpected role 'system' after role 'assistant'", type: order, code: "3230"),
        Case(
            name: "system after user", body: chat(#"\#(user),{"role":"system","content":"s"},\#(user)"#),
            message: "Unexpected role 'system' after role 'user'", type: order, code: "3230"),
        Case(
            name: "missing result", body: chat("\(user),\(calls("abcDEF123", "abcDEF124")),\(result("abcDEF123"))"),
            message: "Not the same number of function calls and responses"),
        Case(
            name: "unanswered calls then assistant",
            body: chat("\(user),\(calls("abcDEF123")),\(assistant),\(user)"),
            message: "Not the same number of function calls and responses"),
        Case(
            name: "unknown result id", body: chat("\(user),\(calls("abcDEF123")),\(result("zzzzzzzzz"))"),
            message: "Unexpected tool call id zzzzzzzzz in tool results"),
        Case(
            name: "duplicate call id",
            body: chat("\(user),\(calls("abcDEF123", "abcDEF123")),\(result("abcDEF123")),\(result("abcDEF123"))"),
            message: "Duplicate tool call id abcDEF123 in assistant message"),
        Case(
            name: "OpenAI-style ids", body: chat("\(user),\(calls("call_12345")),\(result("call_12345"))"),
            message: "Tool call id was call_12345 but must be a-z, A-Z, 0-9, with a length of 9."),
        Case(
            name: "missing call id",
            body: chat(
                #"\#(user),{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":"{}"}}]},\#(result("null"))"#
            ),
            message: "Tool call id has to be defined in serving mode."),
        Case(
            name: "bad function name in a call",
            body: chat(
                #"\#(user),{"role":"assistant","tool_calls":[{"id":"abcDEF123","function":{"name":"get weather","arguments":"{}"}}]},\#(result("abcDEF123"))"#
            ),
            message:
                "Function name was get weather but must be a-z, A-Z, 0-9, or contain underscores and dashes, with a maximum length of 64."
        ),
        Case(
            name: "bad tool name",
            body: chat(user, extra: #","tools":[{"type":"function","function":{"name":"a.b","parameters":{}}}]"#),
            message:
                "Function name was a.b but must be a-z, A-Z, 0-9, or contain underscores and dashes, with a maximum length of 64."
        ),
        Case(
            name: "prefix with forced tool choice",
            body: chat(
                #"\#(user),{"role":"assistant","content":"So","prefix":true}"#,
                extra: #","tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"tool_choice":"any""#),
            message: "Cannot set an assistant prefix with function calling"),
        Case(
            name: "unknown model", body: #"{"model":"gpt-4o","messages":[\#(user)]}"#,
            message: "Invalid model: gpt-4o", type: "invalid_model", code: "1500"),
        Case(
            name: "unknown agent", body: #"{"agent_id":"ag_dead0000000000000000000000000000","messages":[\#(user)]}"#,
            message: "Agent ag_dead0000000000000000000000000000 not found", code: "3000", status: 404,
            path: "/v1/agents/completions"),
    ]

    @Test(arguments: cases)
    func chatHistoryIsRefusedWithMistralsMessage(_ rule: Case) async throws {
        try await withEmulator { server in
            let response = try server.send(rule.path, rule.body)
            #expect(response.status == rule.status, "\(response.text)")
            #expect(
                response.json == [
                    "object": "error", "message": .string(rule.message), "type": .string(rule.type), "param": nil,
                    "code": rule.code,
                ])
        }
    }

    @Test func userAfterToolIsAcceptedWhenNotStrict() async throws {
        let body = Self.chat("\(Self.user),\(Self.calls("abcDEF123")),\(Self.result("abcDEF123")),\(Self.user)")
        try await withEmulator(strictToolAfterUser: false) { server in
            let response = try server.send("/v1/chat/completions", body)
            #expect(response.status == 200)
        }
    }

    @Test func acceptedHistories() async throws {
        let bodies = [
            Self.chat(#"{"role":"system","content":"s"}"#),
            Self.chat(#"{"role":"system","content":"a"},{"role":"system","content":"b"},\#(Self.user)"#),
            Self.chat(
                "\(Self.user),\(Self.calls("abcDEF123", "abcDEF124")),\(Self.result("abcDEF124")),\(Self.result("abcDEF123"))"
            ),
            Self.chat(#"\#(Self.user),{"role":"assistant","content":"So","prefix":true}"#),
            Self.chat(
                "\(Self.user),\(Self.calls("abcDEF123")),\(Self.result("abcDEF123")),\(Self.assistant),\(Self.user)"),
        ]
        try await withEmulator { server in
            for body in bodies {
                let response = try server.send("/v1/chat/completions", body)
                #expect(response.status == 200, "\(body) -> \(response.text)")
            }
        }
    }

    static let agent = "ag_0123456789abcdef0123456789abcdef"

    @Test func conversationCallCountUsesTheAgentsAPIVariant() async throws {
        let body: JSONValue = [
            "agent_id": .string(Self.agent), "stream": false, "store": false,
            "inputs": [
                ["type": "message.input", "role": "user", "content": "hi"],
                ["type": "function.call", "tool_call_id": "abcDEF123", "name": "f", "arguments": "{}"],
                ["type": "function.call", "tool_call_id": "abcDEF124", "name": "f", "arguments": "{}"],
                ["type": "function.result", "tool_call_id": "abcDEF123", "result": "r"],
            ],
        ]
        try await withEmulator { server in
            let response = try server.send("/v1/conversations", json: body)
            #expect(response.status == 400)
            #expect(response.json?["object"] == "Error")
            #expect(response.json?["message"] == "Not the same number of function calls and responses")
            #expect(response.json?["code"] == 3230)
        }
    }

    @Test func conversationUserAfterResultIsRefusedWhenStrict() async throws {
        let body: JSONValue = [
            "agent_id": .string(Self.agent),
            "inputs": [
                ["type": "message.input", "role": "user", "content": "hi"],
                ["type": "function.call", "tool_call_id": "abcDEF123", "name": "f", "arguments": "{}"],
                ["type": "function.result", "tool_call_id": "abcDEF123", "result": "r"],
                ["type": "message.input", "role": "user", "content": "and?"],
            ],
        ]
        try await withEmulator { server in
            let response = try server.send("/v1/conversations", json: body)
            #expect(response.status == 400)
            #expect(response.json?["message"] == "Unexpected role 'user' after role 'tool'")
            #expect(response.json?["code"] == 3230)
        }
    }

    @Test func conversationNeedsExactlyOneOfAgentAndModel() async throws {
        try await withEmulator { server in
            #expect(try server.send("/v1/conversations", #"{"inputs":"hi"}"#).status == 400)
            #expect(
                try server.send(
                    "/v1/conversations", #"{"inputs":"hi","model":"mistral-small-latest","agent_id":"\#(Self.agent)"}"#
                ).status == 400)
            let dead = try server.send(
                "/v1/conversations", #"{"inputs":"hi","agent_id":"ag_deadbeef000000000000000000000000"}"#)
            #expect(dead.status == 404)
            #expect(dead.json?["message"] == "Agent ag_deadbeef000000000000000000000000 not found")
        }
    }

    @Test func authorizationIsRequired() async throws {
        try await withEmulator { server in
            let body = Self.chat(Self.user)
            for key in [nil, "wrong", ""] as [String?] {
                let response = try server.send("/v1/chat/completions", body, apiKey: key)
                #expect(response.status == 401)
                #expect(response.json == ["detail": "Unauthorized"])
            }
            #expect(try server.send("/v1/models", nil, method: "GET", apiKey: nil).status == 401)
            #expect(try server.send("/v1/chat/completions", body).status == 200)
        }
        let open = try await MistralEmulatorServer.start(EmulatorConfiguration())
        #expect(try open.send("/v1/chat/completions", Self.chat(Self.user), apiKey: "anything").status == 200)
        #expect(try open.send("/v1/chat/completions", Self.chat(Self.user), apiKey: "").status == 401)
        try await open.shutdown()
    }
}
