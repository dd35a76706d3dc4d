import AgentProtocol
import JSON
import Testing

@testable import LLM

/// Field lists copied from /work/shared/mistral/openapi.yaml (additionalProperties: false).
private let chatCompletionFields: Set<String> = [
    "model", "messages", "temperature", "top_p", "max_tokens", "stream", "stop", "random_seed", "metadata",
    "response_format", "tools", "tool_choice", "presence_penalty", "frequency_penalty", "n", "prediction",
    "parallel_tool_calls", "reasoning_effort", "prompt_mode", "guardrails", "prompt_cache_key", "service_tier",
    "safe_prompt",
]
private let agentsCompletionFields: Set<String> = [
    "agent_id", "messages", "max_tokens", "stream", "stop", "random_seed", "metadata", "response_format", "tools",
    "tool_choice", "presence_penalty", "frequency_penalty", "n", "prediction", "parallel_tool_calls",
    "reasoning_effort", "prompt_mode", "guardrails", "prompt_cache_key", "service_tier",
]
private let conversationFields: Set<String> = [
    "inputs", "stream", "store", "handoff_execution", "instructions", "tools", "completion_args", "guardrails",
    "name", "description", "metadata", "agent_id", "agent_version", "model",
]
private let completionArgsFields: Set<String> = [
    "stop", "presence_penalty", "frequency_penalty", "temperature", "top_p", "max_tokens", "random_seed",
    "prediction", "response_format", "tool_choice", "reasoning_effort",
]

private let everyOption = GenerationOptions(
    temperature: 0.5, topP: 0.9, maxTokens: 100, randomSeed: 7, stop: ["\n\n"], presencePenalty: 0.1,
    frequencyPenalty: 0.2, safePrompt: true, responseFormat: .jsonObject, toolChoice: .function(name: "lookup"),
    parallelToolCalls: false
)
private let history = [user("q"), assistant(nil, calls: ["call_1"]), tool("call_1", "42"), system("late")]

@Suite("Request bodies")
struct RequestBodyTests {
    @Test("chat completions: model, system prompts first, tools, every option, only schema fields")
    func chat() throws {
        let tools = [ToolSpec(name: "lookup", description: "Find", parameters: ["type": "object"])]
        let prepared = try PreparedRequest(
            LLMRequest(
                upstream: .chatCompletions(model: "mistral-small-latest"), system: ["Be brief"], tools: tools,
                options: everyOption, messages: history)
        )
        let body = try #require(prepared.body.objectValue)
        #expect(prepared.path == "/v1/chat/completions")
        #expect(Set(body.keys).isSubset(of: chatCompletionFields))
        #expect(body["model"] == "mistral-small-latest")
        #expect(body["stream"] == true)
        #expect(body["safe_prompt"] == true)
        #expect(body["parallel_tool_calls"] == false)
        #expect(body["stop"] == ["\n\n"])
        #expect(body["response_format"] == ["type": "json_object"])
        #expect(body["tool_choice"] == ["type": "function", "function": ["name": "lookup"]])
        #expect(
            body["tools"] == [
                [
                    "type": "function",
                    "function": ["name": "lookup", "description": "Find", "parameters": ["type": "object"]],
                ]
            ])
        let messages = try #require(body["messages"]?.arrayValue)
        #expect(
            messages.map { $0["role"]?.stringValue } == ["system", "user", "assistant", "tool", "assistant", "user"])
        #expect(messages[0]["content"] == "Be brief")
        let wireID = try #require(messages[2]["tool_calls"]?.arrayValue?.first?["id"]?.stringValue)
        #expect(ToolCallIDMap.isWireForm(wireID))
        #expect(
            messages[2]["tool_calls"]?.arrayValue?.first == [
                "id": .string(wireID), "type": "function", "function": ["name": "lookup", "arguments": ["q": "x"]],
            ])
        #expect(messages[3] == ["role": "tool", "content": "42", "tool_call_id": .string(wireID), "name": "lookup"])
        #expect(messages[4] == ["role": "assistant", "content": " "])
    }

    @Test("agents completions: no model, temperature, top_p or safe_prompt")
    func agentCompletions() throws {
        let prepared = try PreparedRequest(
            LLMRequest(
                upstream: .agentCompletions(agentID: "ag:3996db2b:20240805:french-agent:a8997aab"),
                options: everyOption, messages: [user("q")], stream: false)
        )
        let body = try #require(prepared.body.objectValue)
        #expect(prepared.path == "/v1/agents/completions")
        #expect(Set(body.keys).isSubset(of: agentsCompletionFields))
        #expect(body["agent_id"] == "ag:3996db2b:20240805:french-agent:a8997aab")
        #expect(body["stream"] == false)
        #expect(body["max_tokens"] == 100)
    }

    @Test("conversations: inputs entries, store false, completion_args within CompletionArgs")
    func conversations() throws {
        let prepared = try PreparedRequest(
            LLMRequest(
                upstream: .conversations(agentID: "ag_0684fe0e0b98773e8000323fc71a3986"), options: everyOption,
                messages: [system("early")] + history + [assistant("So")])
        )
        let body = try #require(prepared.body.objectValue)
        #expect(prepared.path == "/v1/conversations")
        #expect(Set(body.keys).isSubset(of: conversationFields))
        #expect(body["store"] == false)
        #expect(body["stream"] == true)
        let arguments = try #require(body["completion_args"]?.objectValue)
        #expect(Set(arguments.keys).isSubset(of: completionArgsFields))
        #expect(arguments["temperature"] == 0.5)
        // The trailing prefix relaxes the forced choice; a named function alone would become "any".
        #expect(arguments["tool_choice"] == "auto")
        let inputs = try #require(body["inputs"]?.arrayValue)
        #expect(
            inputs.map { $0["type"]?.stringValue ?? "" } == [
                "message.input", "message.input", "function.call", "function.result", "message.input", "message.input",
                "message.input",
            ])
        #expect(inputs[0] == ["type": "message.input", "role": "user", "content": "early"])
        let callID = try #require(inputs[2]["tool_call_id"]?.stringValue)
        #expect(
            inputs[2] == [
                "type": "function.call", "tool_call_id": .string(callID), "name": "lookup", "arguments": ["q": "x"],
            ])
        #expect(inputs[3] == ["type": "function.result", "tool_call_id": .string(callID), "result": "42"])
        #expect(inputs[4] == ["type": "message.input", "role": "assistant", "content": " "])
        #expect(inputs[6] == ["type": "message.input", "role": "assistant", "content": "So", "prefix": true])
    }

    @Test("a named tool choice is sent to conversations as any")
    func conversationNamedChoice() throws {
        let prepared = try PreparedRequest(
            LLMRequest(
                upstream: .conversations(agentID: "ag_0684fe0e0b98773e8000323fc71a3986"),
                options: GenerationOptions(toolChoice: .function(name: "f")), messages: [user("q")])
        )
        #expect(prepared.body["completion_args"] == ["tool_choice": "any"])
    }

    @Test("no options: no completion_args and no optional chat fields")
    func minimal() throws {
        let chat = try PreparedRequest(LLMRequest(upstream: .chatCompletions(model: "m"), messages: [user("q")]))
        #expect(chat.body == ["model": "m", "messages": [["role": "user", "content": "q"]], "stream": true])
        let conversation = try PreparedRequest(
            LLMRequest(upstream: .conversations(agentID: "ag_1"), messages: [user("q")]))
        #expect(conversation.body["completion_args"] == nil)
    }

    @Test("json_schema response format")
    func jsonSchema() {
        let value = PreparedRequest.responseFormat(
            .jsonSchema(name: "n", schema: ["type": "object"], strict: true, description: nil))
        #expect(
            value == [
                "type": "json_schema", "json_schema": ["name": "n", "schema": ["type": "object"], "strict": true],
            ])
    }
}
