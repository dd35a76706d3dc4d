import AgentProtocol
import JSON

/// One upstream call made ready to send: where, what, and how to read the reply.
struct PreparedRequest: Sendable {
    enum ReplyFormat: Sendable {
        /// Chat completions and agents completions: `CompletionChunk`s, `ChatCompletionResponse`.
        case chat
        /// Conversations: `event:`-named SSE, `ConversationResponse`.
        case conversation
    }

    var upstream: Upstream
    var path: String
    var body: JSONValue
    var format: ReplyFormat
    var stream: Bool
    var toolCallIDs: ToolCallIDMap

    /// Builds the body for `request.upstream`, with only fields Mistral's schema allows there
    /// (its request schemas are `additionalProperties: false`).
    init(_ request: LLMRequest) throws(ErrorInfo) {
        let options = request.options
        let stream = request.stream
        switch request.upstream {
        case .chatCompletions(let model):
            let history = try MessageFixups.apply(
                system: request.system, messages: request.messages, toolChoice: options.toolChoice
            )
            var body: JSONObject = [
                "model": .string(model), "messages": .array(history.messages.map(Self.chatMessage)),
            ]
            Self.addSampling(options, to: &body, includingTemperature: true)
            Self.addCompletionOnly(options, to: &body)
            if !request.tools.isEmpty { body["tools"] = .array(request.tools.map(Self.tool)) }
            body["tool_choice"] = history.toolChoice.map(Self.toolChoice)
            body["parallel_tool_calls"] = options.parallelToolCalls.map(JSONValue.bool)
            body["safe_prompt"] = options.safePrompt.map(JSONValue.bool)
            body["stream"] = .bool(stream)
            self.init(request.upstream, path: "/v1/chat/completions", body: body, format: .chat, history: history)

        case .agentCompletions(let agentID):
            // No model, temperature, top_p or safe_prompt in AgentsCompletionRequest: the agent fixes them.
            let history = try MessageFixups.apply(messages: request.messages, toolChoice: options.toolChoice)
            var body: JSONObject = [
                "agent_id": .string(agentID), "messages": .array(history.messages.map(Self.chatMessage)),
            ]
            Self.addSampling(options, to: &body, includingTemperature: false)
            Self.addCompletionOnly(options, to: &body)
            body["tool_choice"] = history.toolChoice.map(Self.toolChoice)
            body["parallel_tool_calls"] = options.parallelToolCalls.map(JSONValue.bool)
            body["stream"] = .bool(stream)
            self.init(request.upstream, path: "/v1/agents/completions", body: body, format: .chat, history: history)

        case .conversations(let agentID):
            try Self.checkConversationChunks(request.messages)
            // The Mistral agent owns its instructions: every system message is a user entry.
            let messages = request.messages.map { message in
                var message = message
                if message.role == .system { message.role = .user }
                return message
            }
            let history = try MessageFixups.apply(messages: messages, toolChoice: options.toolChoice)
            var body: JSONObject = [
                "agent_id": .string(agentID), "inputs": .array(history.messages.flatMap(Self.conversationEntries)),
                "stream": .bool(stream), "store": false,
            ]
            var arguments = JSONObject()
            Self.addSampling(options, to: &arguments, includingTemperature: true)
            arguments["tool_choice"] = history.toolChoice.map(Self.conversationToolChoice)
            if !arguments.isEmpty { body["completion_args"] = .object(arguments) }
            self.init(request.upstream, path: "/v1/conversations", body: body, format: .conversation, history: history)
        }
    }

    private init(_ upstream: Upstream, path: String, body: JSONObject, format: ReplyFormat, history: FixedHistory) {
        self.upstream = upstream
        self.path = path
        self.body = .object(body)
        self.format = format
        self.stream = body["stream"]?.boolValue ?? false
        self.toolCallIDs = history.toolCallIDs
    }

    /// The sampling fields shared by chat, agents completions and `CompletionArgs`.
    private static func addSampling(_ options: GenerationOptions, to body: inout JSONObject, includingTemperature: Bool)
    {
        if includingTemperature {
            body["temperature"] = options.temperature.map(JSONValue.double)
            body["top_p"] = options.topP.map(JSONValue.double)
        }
        body["max_tokens"] = options.maxTokens.map { .int(Int64($0)) }
        body["random_seed"] = options.randomSeed.map { .int(Int64($0)) }
        body["stop"] = options.stop.map { .array($0.map(JSONValue.string)) }
        body["presence_penalty"] = options.presencePenalty.map(JSONValue.double)
        body["frequency_penalty"] = options.frequencyPenalty.map(JSONValue.double)
        body["response_format"] = options.responseFormat.map(responseFormat)
        body["reasoning_effort"] = options.reasoningEffort.map { .string($0.rawValue) }
        body["prediction"] = options.prediction.map { ["type": "content", "content": .string($0)] }
    }

    /// A conversation's `message.input` takes text, images and documents, not audio or file ids.
    private static func checkConversationChunks(_ messages: [ChatMessage]) throws(ErrorInfo) {
        for (index, message) in messages.enumerated() {
            guard case .chunks(let chunks)? = message.content, message.role != .tool else { continue }
            for (position, chunk) in chunks.enumerated() {
                switch chunk {
                case .inputAudio, .file:
                    throw ErrorInfo(
                        code: .badRequest,
                        message:
                            "messages[\(index)].content[\(position)]: the conversations API (agent_api: conversations) takes no \(chunk.typeName) chunks; use agent_api: completions"
                    )
                case .text, .imageURL, .documentURL: continue
                }
            }
        }
    }

    /// The fields chat and agents completions take at the top level, which `CompletionArgs` has not.
    private static func addCompletionOnly(_ options: GenerationOptions, to body: inout JSONObject) {
        body["prompt_mode"] = options.promptMode.map(JSONValue.string)
        body["prompt_cache_key"] = options.promptCacheKey.map(JSONValue.string)
    }

    static func chatMessage(_ message: ChatMessage) -> JSONValue {
        var object: JSONObject = ["role": .string(message.role.rawValue)]
        switch message.role {
        case .system, .user:
            object["content"] = (message.content ?? "").json
        case .assistant:
            object["content"] = message.content?.json
            if !message.toolCalls.isEmpty {
                object["tool_calls"] = .array(
                    message.toolCalls.map { call in
                        [
                            "id": .string(call.id), "type": "function",
                            "function": ["name": .string(call.name), "arguments": call.arguments],
                        ]
                    }
                )
            }
            if message.prefix { object["prefix"] = true }
        case .tool:
            object["content"] = (message.content ?? "").json
            object["tool_call_id"] = message.toolCallID.map(JSONValue.string)
            object["name"] = message.name.map(JSONValue.string)
        }
        return .object(object)
    }

    /// A fixed-up message as `inputs` entries: `message.input`, `function.call`, `function.result`.
    static func conversationEntries(_ message: ChatMessage) -> [JSONValue] {
        switch message.role {
        case .system, .user:
            return [["type": "message.input", "role": "user", "content": (message.content ?? "").json]]
        case .assistant:
            var entries: [JSONValue] = []
            if message.content != nil || message.toolCalls.isEmpty {
                var entry: JSONObject = [
                    "type": "message.input", "role": "assistant", "content": (message.content ?? "").json,
                ]
                if message.prefix { entry["prefix"] = true }
                entries.append(.object(entry))
            }
            for call in message.toolCalls {
                entries.append([
                    "type": "function.call", "tool_call_id": .string(call.id), "name": .string(call.name),
                    "arguments": call.arguments,
                ])
            }
            return entries
        case .tool:
            return [
                [
                    "type": "function.result", "tool_call_id": .string(message.toolCallID ?? ""),
                    // A function result is a string in the conversations API.
                    "result": .string(message.content?.text ?? ""),
                ]
            ]
        }
    }

    static func tool(_ spec: ToolSpec) -> JSONValue {
        [
            "type": "function",
            "function": [
                "name": .string(spec.name), "description": .string(spec.description), "parameters": spec.parameters,
            ],
        ]
    }

    static func toolChoice(_ choice: ToolChoice) -> JSONValue {
        switch choice {
        case .auto: "auto"
        case .none: "none"
        case .any: "any"
        case .required: "required"
        case .function(let name): ["type": "function", "function": ["name": .string(name)]]
        }
    }

    /// `CompletionArgs.tool_choice` is the enum only; a named function is sent as `any`, the
    /// nearest choice it can express (a tool call is still forced; the agent owns its tools).
    static func conversationToolChoice(_ choice: ToolChoice) -> JSONValue {
        if case .function = choice { return "any" }
        return toolChoice(choice)
    }

    static func responseFormat(_ format: ResponseFormat) -> JSONValue {
        switch format {
        case .text: return ["type": "text"]
        case .jsonObject: return ["type": "json_object"]
        case .jsonSchema(let name, let schema, let strict, let description):
            var jsonSchema: JSONObject = ["name": .string(name)]
            jsonSchema["description"] = description.map(JSONValue.string)
            jsonSchema["schema"] = schema
            jsonSchema["strict"] = .bool(strict)
            return ["type": "json_schema", "json_schema": .object(jsonSchema)]
        }
    }
}
