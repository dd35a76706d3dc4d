import JSON

/// The conversation vocabulary shared by the wire protocol and the LLM layer: what a client
/// sends as `messages`, what a session stores, what the Mistral clients turn into bodies.

public enum Role: String, Sendable, Hashable {
    case system, user, assistant, tool
}

public struct ToolCall: Sendable, Hashable {
    /// The id as the client knows it; mapped to Mistral's 9-character form only on the wire.
    public var id: String
    public var name: String
    /// An object, or a string holding JSON as Mistral returns it.
    public var arguments: JSONValue

    public init(id: String, name: String, arguments: JSONValue) {
        self.id = id
        self.name = name
        self.arguments = arguments
    }
}

public struct ChatMessage: Sendable, Hashable {
    public var role: Role
    public var content: String?
    public var toolCalls: [ToolCall]
    /// Tool messages: the call this result answers.
    public var toolCallID: String?
    /// Tool messages: the function's name. Other roles: dropped before sending (Mistral rejects it).
    public var name: String?
    /// Assistant messages: continue this text rather than answer it.
    public var prefix: Bool

    public init(
        role: Role, content: String? = nil, toolCalls: [ToolCall] = [], toolCallID: String? = nil,
        name: String? = nil, prefix: Bool = false
    ) {
        self.role = role
        self.content = content
        self.toolCalls = toolCalls
        self.toolCallID = toolCallID
        self.name = name
        self.prefix = prefix
    }
}

/// One part of a message `content` sent as a list of chunks (CONTRACT §4). Only text chunks
/// are accepted so far; Mistral's multimodal chunks (images, documents, audio, files) are the
/// cases to come.
public enum ContentChunk: Sendable, Hashable {
    case text(String)

    /// The chunk's text, as a text-only history carries it.
    public var text: String {
        switch self {
        case .text(let text): text
        }
    }
}
