import Foundation
import JSON
import Testing

@testable import MistralEmulator

/// The request schemas copied from Mistral's OpenAPI spec, read from the test fixture.
struct FixtureSchemas {
    let document: JSONValue
    let schemas: JSONObject

    static let shared: FixtureSchemas = {
        let url = Bundle.module.url(
            forResource: "mistral-request-schemas", withExtension: "json", subdirectory: "Fixtures")!
        let document = try! JSONParser.parse(bytes: Array(try! Data(contentsOf: url)))
        return FixtureSchemas(document: document, schemas: document["schemas"]!.objectValue!)
    }()

    func resolve(_ schema: JSONValue) -> JSONValue {
        var current = schema
        while let reference = current["$ref"]?.stringValue,
            let target = schemas[String(reference.split(separator: "/").last!)]
        {
            current = target
        }
        return current
    }

    /// The properties a root schema declares, following allOf.
    func properties(of name: String) -> [(key: String, value: JSONValue)] {
        let schema = resolve(schemas[name]!)
        if let parts = schema["allOf"]?.arrayValue {
            var seen = Set<String>()
            return parts.flatMap { properties(ofSchema: $0) }.filter { seen.insert($0.key).inserted }
        }
        return properties(ofSchema: schema)
    }

    private func properties(ofSchema schema: JSONValue) -> [(key: String, value: JSONValue)] {
        resolve(schema)["properties"]?.objectValue?.members ?? []
    }

    /// A small value the schema accepts.
    func sample(_ schema: JSONValue) -> JSONValue {
        let schema = resolve(schema)
        if let constant = schema["const"] { return constant }
        if let first = schema["enum"]?.arrayValue?.first { return first }
        if let parts = schema["allOf"]?.arrayValue {
            var merged = JSONObject()
            for part in parts { for member in sample(part).objectValue ?? [:] { merged[member.key] = member.value } }
            return .object(merged)
        }
        if let branches = schema["anyOf"]?.arrayValue ?? schema["oneOf"]?.arrayValue {
            if let discriminator = schema["discriminator"], let property = discriminator["propertyName"]?.stringValue,
                let first = discriminator["mapping"]?.objectValue?.members.first
            {
                var object = sample(["$ref": first.value]).objectValue ?? [:]
                object[property] = .string(first.key)
                return .object(object)
            }
            return sample(branches.first { $0["type"] != "null" } ?? branches[0])
        }
        switch schema["type"]?.stringValue {
        case "string":
            switch schema["format"]?.stringValue {
            case "uuid": return "123e4567-e89b-12d3-a456-426614174000"
            case "date-time": return "2026-01-01T00:00:00Z"
            default: return "x"
            }
        case "integer": return schema["minimum"] ?? 1
        case "number":
            let low = schema["minimum"]?.doubleValue ?? schema["exclusiveMinimum"]?.doubleValue ?? 0
            return .double(min(low + 0.5, schema["maximum"]?.doubleValue ?? 1))
        case "boolean": return false
        case "array": return [sample(schema["items"] ?? [:])]
        case "null": return nil
        default:
            var object = JSONObject()
            let properties = schema["properties"]?.objectValue ?? [:]
            for name in schema["required"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
                object[name] = sample(properties[name] ?? "x")
            }
            return .object(object)
        }
    }
}

struct Endpoint: CustomTestStringConvertible, Sendable {
    var path: String
    var schema: String
    var base: JSONValue
    /// Properties left out of the one-at-a-time test: set by `base`, or exclusive with it.
    var skipped: Set<String>
    var testDescription: String { schema }
}

let chatEndpoint = Endpoint(
    path: "/v1/chat/completions", schema: "ChatCompletionRequest",
    base: ["model": "mistral-small-latest", "messages": [["role": "user", "content": "hello"]]],
    skipped: ["model", "messages"])
let agentsEndpoint = Endpoint(
    path: "/v1/agents/completions", schema: "AgentsCompletionRequest",
    base: ["agent_id": "ag_0123456789abcdef0123456789abcdef", "messages": [["role": "user", "content": "hello"]]],
    skipped: ["agent_id", "messages"])
let conversationEndpoint = Endpoint(
    path: "/v1/conversations", schema: "ConversationRequest",
    base: ["agent_id": "ag_0123456789abcdef0123456789abcdef", "inputs": "hello", "stream": false, "store": false],
    skipped: ["agent_id", "model", "inputs", "stream"])

func with(_ base: JSONValue, _ key: String, _ value: JSONValue) -> JSONValue {
    var object = base.objectValue!
    object[key] = value
    return .object(object)
}

/// The (type, loc) pairs of a 422 body.
func issues(_ response: RawResponse) -> [(type: String, loc: String)] {
    (response.json?["detail"]?.arrayValue ?? []).map { ($0["type"]?.stringValue ?? "", $0["loc"]?.jsonText ?? "") }
}

@Suite("Request validation against Mistral's OpenAPI schemas")
struct SpecValidationTests {
    @Test func fixtureAndEmbeddedSchemasAreTheSameDocument() throws {
        let embedded = try JSONParser.parse(mistralRequestSchemasJSON)
        #expect(embedded == FixtureSchemas.shared.document)
        #expect(FixtureSchemas.shared.schemas.count > 60)
    }

    @Test(arguments: [chatEndpoint, agentsEndpoint, conversationEndpoint])
    func everyDeclaredPropertyIsAcceptedAndAnInventedOneRefused(_ endpoint: Endpoint) async throws {
        let fixture = FixtureSchemas.shared
        try await withEmulator { server in
            let base = try server.send(endpoint.path, json: endpoint.base)
            #expect(base.status == 200, "\(base.text)")
            let properties = fixture.properties(of: endpoint.schema).filter { !endpoint.skipped.contains($0.key) }
            #expect(properties.count >= 10)
            for property in properties {
                let body = with(endpoint.base, property.key, fixture.sample(property.value))
                let response = try server.send(endpoint.path, json: body)
                #expect(response.status == 200, "\(property.key): \(body.jsonText) -> \(response.text)")
            }
            let invented = try server.send(endpoint.path, json: with(endpoint.base, "made_up_field", 1))
            #expect(invented.status == 422)
            #expect(issues(invented).map(\.type) == ["extra_forbidden"])
            #expect(issues(invented).map(\.loc) == [#"["body","made_up_field"]"#])
            #expect(invented.json?["detail"]?.arrayValue?.first?["msg"] == "Extra inputs are not permitted")
        }
    }

    @Test func minimalBodiesAreAccepted() async throws {
        try await withEmulator { server in
            for endpoint in [chatEndpoint, agentsEndpoint, conversationEndpoint] {
                #expect(try server.send(endpoint.path, json: endpoint.base).status == 200)
            }
            let byModel = try server.send("/v1/conversations", #"{"model":"mistral-medium-latest","inputs":"hi"}"#)
            #expect(byModel.status == 200, "\(byModel.text)")
        }
    }

    static let richMessages: JSONValue = [
        ["role": "system", "content": [["type": "text", "text": "be brief"]]],
        [
            "role": "user",
            "content": [
                ["type": "text", "text": "look"],
                ["type": "image_url", "image_url": ["url": "https://e.x/a.png", "detail": "low"]],
            ],
        ],
        [
            "role": "assistant", "content": "",
            "tool_calls": [
                [
                    "id": "abcDEF123", "type": "function",
                    "function": ["name": "get_weather", "arguments": #"{"city":"Paris"}"#], "index": 0,
                ],
                ["id": "abcDEF124", "function": ["name": "get_time", "arguments": ["tz": "UTC"]]],
            ], "prefix": false,
        ],
        ["role": "tool", "content": "sunny", "tool_call_id": "abcDEF123", "name": "get_weather"],
        ["role": "tool", "content": [["type": "text", "text": "noon"]], "tool_call_id": "abcDEF124"],
        ["role": "assistant", "content": "It is sunny at noon."],
        ["role": "user", "content": nil],
        ["role": "user", "content": "thanks"],
    ]

    static let richTools: JSONValue = [
        [
            "type": "function",
            "function": [
                "name": "get_weather", "description": "weather", "strict": false,
                "parameters": ["type": "object", "properties": ["city": ["type": "string"]], "required": ["city"]],
            ],
        ],
        ["type": "function", "function": ["name": "get_time", "parameters": [:]]],
    ]

    static let sharedOptions: JSONObject = [
        "max_tokens": 100, "stream": false, "stop": ["\n\n"], "random_seed": 7, "metadata": ["a": 1],
        "response_format": [
            "type": "json_schema", "json_schema": ["name": "r", "schema": ["type": "object"], "strict": true],
        ],
        "tools": richTools, "tool_choice": "auto", "presence_penalty": 0.5, "frequency_penalty": -0.5, "n": 1,
        "prediction": ["type": "content", "content": ""], "parallel_tool_calls": true, "reasoning_effort": "low",
        "prompt_mode": nil, "guardrails": [["block_on_error": false]], "prompt_cache_key": "k", "service_tier": "auto",
    ]

    @Test func richBodiesWithEveryMessageShapeAreAccepted() async throws {
        try await withEmulator { server in
            var chat = Self.sharedOptions
            chat["model"] = "mistral-large-latest"
            chat["messages"] = Self.richMessages
            chat["temperature"] = 0.7
            chat["top_p"] = 1
            chat["safe_prompt"] = false
            let chatResponse = try server.send("/v1/chat/completions", json: .object(chat))
            #expect(chatResponse.status == 200, "\(chatResponse.text)")

            var agents = Self.sharedOptions
            agents["agent_id"] = "ag:3996db2b:20240805:french-agent:a8997aab"
            agents["messages"] = Self.richMessages
            let agentsResponse = try server.send("/v1/agents/completions", json: .object(agents))
            #expect(agentsResponse.status == 200, "\(agentsResponse.text)")

            let conversation: JSONValue = [
                "agent_id": "ag_0123456789abcdef0123456789abcdef", "stream": false, "store": false,
                "handoff_execution": "server",
                "inputs": [
                    ["type": "message.input", "role": "user", "content": "hi"],
                    ["object": "entry", "type": "message.output", "role": "assistant", "content": "Let me check."],
                    ["type": "function.call", "tool_call_id": "abcDEF123", "name": "get_weather", "arguments": "{}"],
                    [
                        "type": "function.call", "tool_call_id": "abcDEF124", "name": "get_time",
                        "arguments": ["tz": "UTC"],
                    ],
                    ["type": "function.result", "tool_call_id": "abcDEF123", "result": "sunny"],
                    ["type": "function.result", "tool_call_id": "abcDEF124", "result": "noon"],
                    ["type": "message.input", "role": "assistant", "content": [["type": "text", "text": "Sunny."]]],
                    ["role": "user", "content": "thanks"],
                ],
                "completion_args": [
                    "stop": "x", "presence_penalty": 0, "frequency_penalty": 0, "temperature": 0.3, "top_p": 0.9,
                    "max_tokens": 50, "random_seed": 1, "prediction": nil, "response_format": ["type": "text"],
                    "tool_choice": "auto", "reasoning_effort": nil,
                ],
                "tools": Self.richTools, "metadata": ["k": "v"], "name": "n", "instructions": nil,
            ]
            let conversationResponse = try server.send("/v1/conversations", json: conversation)
            #expect(conversationResponse.status == 200, "\(conversationResponse.text)")
        }
    }

    struct Refusal: CustomTestStringConvertible, Sendable {
        var name: String
        var path: String
        var body: String
        var type: String
        var loc: String
        var testDescription: String { name }
    }

    static let user = #"{"role":"user","content":"hi"}"#
    static let refusals: [Refusal] = [
        Refusal(
            name: "stream_options", path: "/v1/chat/completions",
            body: #"{"model":"mistral-small-latest","messages":[\#(user)],"stream_options":{"include_usage":true}}"#,
            type: "extra_forbidden", loc: #"["body","stream_options"]"#),
        Refusal(
            name: "max_completion_tokens", path: "/v1/chat/completions",
            body: #"{"model":"mistral-small-latest","messages":[\#(user)],"max_completion_tokens":5}"#,
            type: "extra_forbidden", loc: #"["body","max_completion_tokens"]"#),
        Refusal(
            name: "name on a user message", path: "/v1/chat/completions",
            body: #"{"model":"mistral-small-latest","messages":[{"role":"user","content":"hi","name":"bob"}]}"#,
            type: "extra_forbidden", loc: #"["body","messages",0,"user","name"]"#),
        Refusal(
            name: "name inside tool_calls[i]", path: "/v1/chat/completions",
            body:
                #"{"model":"mistral-small-latest","messages":[\#(user),{"role":"assistant","tool_calls":[{"id":"abcDEF123","name":"f","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","content":"r","tool_call_id":"abcDEF123"}]}"#,
            type: "extra_forbidden", loc: #"["body","messages",1,"assistant","tool_calls",0,"name"]"#),
        Refusal(
            name: "reasoning_content on assistant", path: "/v1/chat/completions",
            body:
                #"{"model":"mistral-small-latest","messages":[\#(user),{"role":"assistant","content":"a","reasoning_content":"r"},\#(user)]}"#,
            type: "extra_forbidden", loc: #"["body","messages",1,"assistant","reasoning_content"]"#),
        Refusal(
            name: "safe_prompt in CompletionArgs", path: "/v1/conversations",
            body:
                #"{"agent_id":"ag_0123456789abcdef0123456789abcdef","inputs":"hi","completion_args":{"safe_prompt":true}}"#,
            type: "extra_forbidden", loc: #"["body","completion_args","safe_prompt"]"#),
        Refusal(
            name: "temperature on agents completions", path: "/v1/agents/completions",
            body: #"{"agent_id":"ag_0123456789abcdef0123456789abcdef","messages":[\#(user)],"temperature":0.5}"#,
            type: "extra_forbidden", loc: #"["body","temperature"]"#),
        Refusal(
            name: "model on agents completions", path: "/v1/agents/completions",
            body:
                #"{"agent_id":"ag_0123456789abcdef0123456789abcdef","messages":[\#(user)],"model":"mistral-small-latest"}"#,
            type: "extra_forbidden", loc: #"["body","model"]"#),
        Refusal(
            name: "unknown conversation field", path: "/v1/conversations",
            body: #"{"agent_id":"ag_0123456789abcdef0123456789abcdef","inputs":"hi","safe_prompt":true}"#,
            type: "extra_forbidden", loc: #"["body","safe_prompt"]"#),
        Refusal(
            name: "temperature 2.0", path: "/v1/chat/completions",
            body: #"{"model":"mistral-small-latest","messages":[\#(user)],"temperature":2.0}"#,
            type: "less_than_equal", loc: #"["body","temperature"]"#),
        Refusal(
            name: "CompletionArgs temperature 1.2", path: "/v1/conversations",
            body:
                #"{"agent_id":"ag_0123456789abcdef0123456789abcdef","inputs":"hi","completion_args":{"temperature":1.2}}"#,
            type: "less_than_equal", loc: #"["body","completion_args","temperature"]"#),
        Refusal(
            name: "top_p 0", path: "/v1/chat/completions",
            body: #"{"model":"mistral-small-latest","messages":[\#(user)],"top_p":0}"#,
            type: "greater_than", loc: #"["body","top_p"]"#),
        Refusal(
            name: "negative max_tokens", path: "/v1/chat/completions",
            body: #"{"model":"mistral-small-latest","messages":[\#(user)],"max_tokens":-1}"#,
            type: "greater_than_equal", loc: #"["body","max_tokens"]"#),
        Refusal(
            name: "temperature as string", path: "/v1/chat/completions",
            body: #"{"model":"mistral-small-latest","messages":[\#(user)],"temperature":"hot"}"#,
            type: "float_type", loc: #"["body","temperature"]"#),
        Refusal(
            name: "fractional max_tokens", path: "/v1/chat/completions",
            body: #"{"model":"mistral-small-latest","messages":[\#(user)],"max_tokens":1.5}"#,
            type: "int_from_float", loc: #"["body","max_tokens"]"#),
        Refusal(
            name: "stream as string", path: "/v1/chat/completions",
            body: #"{"model":"mistral-small-latest","messages":[\#(user)],"stream":"yes"}"#,
            type: "bool_type", loc: #"["body","stream"]"#),
        Refusal(
            name: "messages as string", path: "/v1/chat/completions",
            body: #"{"model":"mistral-small-latest","messages":"hi"}"#,
            type: "list_type", loc: #"["body","messages"]"#),
        Refusal(
            name: "model as number", path: "/v1/chat/completions",
            body: #"{"model":5,"messages":[\#(user)]}"#, type: "string_type", loc: #"["body","model"]"#),
        Refusal(
            name: "missing model", path: "/v1/chat/completions",
            body: #"{"messages":[\#(user)]}"#, type: "missing", loc: #"["body","model"]"#),
        Refusal(
            name: "missing user content", path: "/v1/chat/completions",
            body: #"{"model":"mistral-small-latest","messages":[{"role":"user"}]}"#,
            type: "missing", loc: #"["body","messages",0,"user","content"]"#),
        Refusal(
            name: "missing function arguments", path: "/v1/chat/completions",
            body:
                #"{"model":"mistral-small-latest","messages":[\#(user),{"role":"assistant","tool_calls":[{"id":"abcDEF123","function":{"name":"f"}}]},{"role":"tool","content":"r","tool_call_id":"abcDEF123"}]}"#,
            type: "missing", loc: #"["body","messages",1,"assistant","tool_calls",0,"function","arguments"]"#),
        Refusal(
            name: "unknown role", path: "/v1/chat/completions",
            body: #"{"model":"mistral-small-latest","messages":[{"role":"developer","content":"x"}]}"#,
            type: "union_tag_invalid", loc: #"["body","messages",0]"#),
        Refusal(
            name: "missing role", path: "/v1/chat/completions",
            body: #"{"model":"mistral-small-latest","messages":[{"content":"x"}]}"#,
            type: "union_tag_not_found", loc: #"["body","messages",0]"#),
        Refusal(
            name: "unknown tool_choice", path: "/v1/chat/completions",
            body: #"{"model":"mistral-small-latest","messages":[\#(user)],"tool_choice":"sometimes"}"#,
            type: "enum", loc: #"["body","tool_choice"]"#),
        Refusal(
            name: "conversation tool_choice object", path: "/v1/conversations",
            body:
                #"{"agent_id":"ag_0123456789abcdef0123456789abcdef","inputs":"hi","completion_args":{"tool_choice":{"type":"function","function":{"name":"f"}}}}"#,
            type: "string_type", loc: #"["body","completion_args","tool_choice"]"#),
        Refusal(
            name: "missing inputs", path: "/v1/conversations",
            body: #"{"agent_id":"ag_0123456789abcdef0123456789abcdef"}"#, type: "missing", loc: #"["body","inputs"]"#),
        Refusal(
            name: "function.result without result", path: "/v1/conversations",
            body:
                #"{"agent_id":"ag_0123456789abcdef0123456789abcdef","inputs":[{"type":"function.result","tool_call_id":"abcDEF123"}]}"#,
            type: "missing", loc: #"["body","inputs",0,"result"]"#),
        Refusal(
            name: "not JSON", path: "/v1/chat/completions", body: #"{"model":"#, type: "json_invalid",
            loc: #"["body",9]"#),
    ]

    @Test(arguments: refusals)
    func forbiddenBodiesAreRefusedWith422(_ refusal: Refusal) async throws {
        try await withEmulator { server in
            let response = try server.send(refusal.path, refusal.body)
            #expect(response.status == 422, "\(response.text)")
            let found = issues(response)
            #expect(found.contains { $0.type == refusal.type && $0.loc == refusal.loc }, "\(response.text)")
        }
    }

    @Test func missingFieldErrorCarriesPydanticMessageAndInput() throws {
        let issues = SchemaSet.mistral.validate(["messages": []], against: "ChatCompletionRequest")
        #expect(
            issues == [
                ValidationIssue(
                    type: "missing", loc: ["body", "model"], msg: "Field required", input: ["messages": []])
            ])
    }
}
