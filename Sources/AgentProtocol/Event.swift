import JSON

/// Builders for the event lines of CONTRACT §4. Every event is one JSON object on one line,
/// tagged with the request's id; `done`, `error` and `result` are terminal.
public enum Event {
    public static func start(id: RequestID, agent: String, mode: String, modelKey: String, model: String) -> JSONValue {
        .object([
            "id": id.json, "type": "start", "agent": .string(agent), "mode": .string(mode), modelKey: .string(model),
        ])
    }

    public static func delta(id: RequestID, text: String) -> JSONValue {
        .object(["id": id.json, "type": "delta", "text": .string(text)])
    }

    public static func toolCall(id: RequestID, call: ToolCall) -> JSONValue {
        .object(["id": id.json, "type": "tool_call", "tool_call": call.eventJSON])
    }

    public static func toolResult(id: RequestID, _ result: ToolResult) -> JSONValue {
        .object(["id": id.json, "type": "tool_result", "tool_result": result.json])
    }

    public static func reasoning(id: RequestID, text: String) -> JSONValue {
        .object(["id": id.json, "type": "reasoning", "text": .string(text)])
    }

    public static func citation(id: RequestID, _ citation: Citation) -> JSONValue {
        .object(["id": id.json, "type": "citation", "citation": citation.json])
    }

    public static func file(id: RequestID, _ file: GeneratedFile) -> JSONValue {
        .object(["id": id.json, "type": "file", "file": file.json])
    }

    public static func toolExecution(id: RequestID, _ execution: ToolExecution) -> JSONValue {
        .object(["id": id.json, "type": "tool_execution", "tool_execution": execution.json])
    }

    public static func handoff(id: RequestID, _ handoff: Handoff) -> JSONValue {
        .object(["id": id.json, "type": "handoff", "handoff": handoff.json])
    }

    /// The members of `done` beyond the reply itself, each left out when empty.
    public struct DoneExtras: Sendable {
        public var reasoning = ""
        public var citations: [Citation] = []
        public var files: [GeneratedFile] = []
        /// The reply parsed, when JSON was asked for and the reply parses.
        public var json: JSONValue?
        /// Model calls made.
        public var steps = 0
        /// The assistant and tool messages the request added, for a client to append to its history.
        public var messages: [ChatMessage] = []
        /// The request's `session`, echoed.
        public var session: String?

        public init(
            reasoning: String = "", citations: [Citation] = [], files: [GeneratedFile] = [], json: JSONValue? = nil,
            steps: Int = 0, messages: [ChatMessage] = [], session: String? = nil
        ) {
            self.reasoning = reasoning
            self.citations = citations
            self.files = files
            self.json = json
            self.steps = steps
            self.messages = messages
            self.session = session
        }
    }

    public static func done(
        id: RequestID, text: String, toolCalls: [ToolCall], finishReason: String, usage: JSONValue, model: String?,
        extras: DoneExtras = DoneExtras()
    ) -> JSONValue {
        var event: JSONObject = [
            "id": id.json, "type": "done", "text": .string(text), "tool_calls": .array(toolCalls.map(\.eventJSON)),
            "finish_reason": .string(finishReason), "usage": usage,
        ]
        if let model { event["model"] = .string(model) }
        if !extras.reasoning.isEmpty { event["reasoning"] = .string(extras.reasoning) }
        if !extras.citations.isEmpty { event["citations"] = .array(extras.citations.map(\.json)) }
        if !extras.files.isEmpty { event["files"] = .array(extras.files.map(\.json)) }
        if let json = extras.json { event["json"] = json }
        if extras.steps > 0 { event["steps"] = .int(Int64(extras.steps)) }
        if !extras.messages.isEmpty { event["messages"] = .array(extras.messages.map(\.json)) }
        if let session = extras.session { event["session"] = .string(session) }
        return .object(event)
    }

    /// `id` is nil only when a line was too broken to carry one.
    public static func error(id: RequestID?, _ error: ErrorInfo) -> JSONValue {
        var body: JSONObject = [
            "code": .string(error.code.rawValue), "message": .string(error.message),
            "retryable": .bool(error.retryable),
        ]
        if let status = error.status { body["status"] = .int(Int64(status)) }
        if let seconds = error.retryAfterSeconds { body["retry_after_s"] = .int(Int64(seconds)) }
        var event = JSONObject()
        if let id { event["id"] = id.json }
        event["type"] = "error"
        event["error"] = .object(body)
        return .object(event)
    }

    /// A control command's answer: `{"id":…,"type":"result",key:value}`.
    public static func result(id: RequestID, key: String, value: JSONValue) -> JSONValue {
        .object(["id": id.json, "type": "result", key: value])
    }

    /// The events' lines as sent, back to back: compact JSON and a newline each.
    public static func lines(_ events: [JSONValue]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(128 * events.count)
        for event in events {
            event.write(to: &bytes)
            bytes.append(UInt8(ascii: "\n"))
        }
        return bytes
    }
}

extension ErrorInfo {
    /// Reads the `error` member of an error event (agentctl's side of the protocol).
    public init?(event: JSONValue) {
        guard let body = event["error"], let code = body["code"]?.stringValue.flatMap(ErrorCode.init(rawValue:)) else {
            return nil
        }
        self.init(
            code: code, message: body["message"]?.stringValue ?? "", retryable: body["retryable"]?.boolValue ?? false,
            status: body["status"]?.intValue.map(Int.init),
            retryAfterSeconds: body["retry_after_s"]?.intValue.map(Int.init)
        )
    }
}

extension ToolCall {
    /// The call as events carry it: `arguments` as an object when it holds JSON text, as
    /// Mistral returns it.
    var eventJSON: JSONValue {
        var arguments = self.arguments
        if case .string(let text) = arguments, let parsed = try? JSONParser.parse(text), case .object = parsed {
            arguments = parsed
        }
        return ["id": .string(id), "name": .string(name), "arguments": arguments]
    }
}
