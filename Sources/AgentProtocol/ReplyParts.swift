import JSON

/// A source a built-in tool (web search, a document library) drew on: Mistral's
/// `tool_reference` chunk, as `citation` events and `done.citations` carry it.
public struct Citation: Sendable, Hashable {
    public var tool: String
    public var title: String
    public var url: String?
    public var favicon: String?
    public var description: String?

    public init(tool: String, title: String, url: String? = nil, favicon: String? = nil, description: String? = nil) {
        self.tool = tool
        self.title = title
        self.url = url
        self.favicon = favicon
        self.description = description
    }

    /// Null fields are left out.
    public var json: JSONValue {
        var object: JSONObject = ["tool": .string(tool), "title": .string(title)]
        object["url"] = url.map(JSONValue.string)
        object["favicon"] = favicon.map(JSONValue.string)
        object["description"] = description.map(JSONValue.string)
        return .object(object)
    }
}

/// A file a built-in tool made (an image from image_generation): Mistral's `tool_file` chunk.
public struct GeneratedFile: Sendable, Hashable {
    public var fileID: String
    public var fileName: String?
    public var fileType: String?
    public var tool: String

    public init(fileID: String, fileName: String? = nil, fileType: String? = nil, tool: String) {
        self.fileID = fileID
        self.fileName = fileName
        self.fileType = fileType
        self.tool = tool
    }

    public var json: JSONValue {
        var object: JSONObject = ["file_id": .string(fileID)]
        object["file_name"] = fileName.map(JSONValue.string)
        object["file_type"] = fileType.map(JSONValue.string)
        object["tool"] = .string(tool)
        return .object(object)
    }
}

/// A run of one of the Mistral agent's built-in tools, as it streams (agent mode).
public struct ToolExecution: Sendable, Hashable {
    public enum State: String, Sendable, Hashable {
        case started, delta, done
    }

    public var id: String
    public var name: String
    public var state: State
    /// `started` and `delta`: the arguments, as Mistral streams them (text).
    public var arguments: String?
    /// `done`: what the tool reported (code_interpreter's `code_output`, for instance).
    public var info: JSONValue?

    public init(id: String, name: String, state: State, arguments: String? = nil, info: JSONValue? = nil) {
        self.id = id
        self.name = name
        self.state = state
        self.arguments = arguments
        self.info = info
    }

    public var json: JSONValue {
        var object: JSONObject = ["id": .string(id), "name": .string(name), "state": .string(state.rawValue)]
        object["arguments"] = arguments.map(JSONValue.string)
        object["info"] = info
        return .object(object)
    }
}

/// One Mistral agent handing the conversation to another (agent mode): `started` names the
/// agent handing over, `done` the agent taking over.
public struct Handoff: Sendable, Hashable {
    public enum State: String, Sendable, Hashable {
        case started, done
    }

    public var state: State
    public var id: String?
    public var agentID: String?
    public var agentName: String?

    public init(state: State, id: String? = nil, agentID: String? = nil, agentName: String? = nil) {
        self.state = state
        self.id = id
        self.agentID = agentID
        self.agentName = agentName
    }

    public var json: JSONValue {
        var object: JSONObject = ["state": .string(state.rawValue)]
        object["id"] = id.map(JSONValue.string)
        object["agent_id"] = agentID.map(JSONValue.string)
        object["agent_name"] = agentName.map(JSONValue.string)
        return .object(object)
    }
}

/// What one server tool call came to, as the `tool_result` event carries it (CONTRACT §9).
public struct ToolResult: Sendable, Hashable {
    public var toolCallID: String
    public var name: String
    public var ok: Bool
    /// The tool's output, or why it failed, timed out or is unknown: what the model sees.
    public var output: String
    public var durationMilliseconds: Int64

    public init(toolCallID: String, name: String, ok: Bool, output: String, durationMilliseconds: Int64) {
        self.toolCallID = toolCallID
        self.name = name
        self.ok = ok
        self.output = output
        self.durationMilliseconds = durationMilliseconds
    }

    public var json: JSONValue {
        [
            "tool_call_id": .string(toolCallID), "name": .string(name), "ok": .bool(ok), "output": .string(output),
            "duration_ms": .int(durationMilliseconds),
        ]
    }

    /// The tool message that hands the result to the model.
    public var message: ChatMessage {
        ChatMessage(role: .tool, content: .text(output), toolCallID: toolCallID, name: name)
    }
}
