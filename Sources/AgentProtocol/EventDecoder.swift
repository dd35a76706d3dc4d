import JSON

/// An event line as a client reads it: the typed side of `Event`, for agentctl and the tests.
public struct ReceivedEvent: Sendable {
    /// Nil only on the error of a line too broken to carry an id.
    public var id: RequestID?
    public var kind: Kind
    /// The whole line, parsed: what `--json` prints and what a test can still look into.
    public var json: JSONValue

    public enum Kind: Sendable, Equatable {
        /// `model` holds the agent id for an agent-mode agent.
        case start(agent: String, mode: String, model: String)
        case delta(text: String)
        case reasoning(text: String)
        case citation(Citation)
        case file(GeneratedFile)
        case toolExecution(ToolExecution)
        case handoff(Handoff)
        case toolCall(ToolCall)
        case done(Done)
        case error(ErrorInfo)
        /// A control command's answer: the event's members besides `id` and `type`.
        case result(JSONObject)
        /// A type this client does not know, such as one a newer agentd sends: skipped, not an error.
        case other(type: String)
    }

    public struct Done: Sendable, Equatable {
        public var text: String
        public var toolCalls: [ToolCall]
        public var finishReason: String
        public var usage: JSONValue
        public var model: String?

        public init(text: String, toolCalls: [ToolCall], finishReason: String, usage: JSONValue, model: String?) {
            self.text = text
            self.toolCalls = toolCalls
            self.finishReason = finishReason
            self.usage = usage
            self.model = model
        }
    }

    /// Nil when `json` is not an event: an object whose `type` is a string.
    public init?(_ json: JSONValue) {
        guard case .object(let members) = json, let type = members["type"]?.stringValue else { return nil }
        self.json = json
        id = members["id"].flatMap(RequestID.init)
        switch type {
        case "start":
            kind = .start(
                agent: members["agent"]?.stringValue ?? "", mode: members["mode"]?.stringValue ?? "",
                model: (members["model"] ?? members["agent_id"])?.stringValue ?? "")
        case "delta":
            kind = .delta(text: members["text"]?.stringValue ?? "")
        case "reasoning":
            kind = .reasoning(text: members["text"]?.stringValue ?? "")
        case "citation":
            let citation = members["citation"] ?? .null
            kind = .citation(
                Citation(
                    tool: citation["tool"]?.stringValue ?? "", title: citation["title"]?.stringValue ?? "",
                    url: citation["url"]?.stringValue, favicon: citation["favicon"]?.stringValue,
                    description: citation["description"]?.stringValue))
        case "file":
            let file = members["file"] ?? .null
            kind = .file(
                GeneratedFile(
                    fileID: file["file_id"]?.stringValue ?? "", fileName: file["file_name"]?.stringValue,
                    fileType: file["file_type"]?.stringValue, tool: file["tool"]?.stringValue ?? ""))
        case "tool_execution":
            let execution = members["tool_execution"] ?? .null
            kind = .toolExecution(
                ToolExecution(
                    id: execution["id"]?.stringValue ?? "", name: execution["name"]?.stringValue ?? "",
                    state: execution["state"]?.stringValue.flatMap(ToolExecution.State.init(rawValue:)) ?? .delta,
                    arguments: execution["arguments"]?.stringValue, info: execution["info"]))
        case "handoff":
            let handoff = members["handoff"] ?? .null
            kind = .handoff(
                Handoff(
                    state: handoff["state"]?.stringValue.flatMap(Handoff.State.init(rawValue:)) ?? .started,
                    id: handoff["id"]?.stringValue, agentID: handoff["agent_id"]?.stringValue,
                    agentName: handoff["agent_name"]?.stringValue))
        case "tool_call":
            kind = .toolCall(Self.toolCall(members["tool_call"] ?? .null))
        case "done":
            kind = .done(
                Done(
                    text: members["text"]?.stringValue ?? "",
                    toolCalls: (members["tool_calls"]?.arrayValue ?? []).map(Self.toolCall),
                    finishReason: members["finish_reason"]?.stringValue ?? "",
                    usage: members["usage"] ?? .null, model: members["model"]?.stringValue))
        case "error":
            kind = .error(
                ErrorInfo(event: json) ?? ErrorInfo(code: .internal, message: "malformed error event: \(json.jsonText)")
            )
        case "result":
            kind = .result(JSONObject(members.members.filter { $0.key != "id" && $0.key != "type" }))
        default:
            kind = .other(type: type)
        }
    }

    /// `done`, `error` and `result` end their request: nothing more comes for its id.
    public var isTerminal: Bool {
        switch kind {
        case .done, .error, .result: true
        case .start, .delta, .reasoning, .citation, .file, .toolExecution, .handoff, .toolCall, .other: false
        }
    }

    private static func toolCall(_ value: JSONValue) -> ToolCall {
        ToolCall(
            id: value["id"]?.stringValue ?? "", name: value["name"]?.stringValue ?? "",
            arguments: value["arguments"] ?? .object([:]))
    }
}
