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
    public var content: MessageContent?
    public var toolCalls: [ToolCall]
    /// Tool messages: the call this result answers.
    public var toolCallID: String?
    /// Tool messages: the function's name. Other roles: dropped before sending (Mistral rejects it).
    public var name: String?
    /// Assistant messages: continue this text rather than answer it.
    public var prefix: Bool

    public init(
        role: Role, content: MessageContent? = nil, toolCalls: [ToolCall] = [], toolCallID: String? = nil,
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

extension ChatMessage {
    public init(
        role: Role, content text: String?, toolCalls: [ToolCall] = [], toolCallID: String? = nil, name: String? = nil,
        prefix: Bool = false
    ) {
        self.init(
            role: role, content: text.map(MessageContent.text), toolCalls: toolCalls, toolCallID: toolCallID,
            name: name, prefix: prefix)
    }

    /// The message in the request's shape (CONTRACT §4), as `done.messages` and sessions carry
    /// it: what `RequestDecoder` reads back into the same message.
    public var json: JSONValue {
        var object: JSONObject = ["role": .string(role.rawValue)]
        object["content"] = content?.json
        if !toolCalls.isEmpty { object["tool_calls"] = .array(toolCalls.map(\.eventJSON)) }
        object["tool_call_id"] = toolCallID.map(JSONValue.string)
        object["name"] = name.map(JSONValue.string)
        return .object(object)
    }
}

/// A message's `content`: text, or a list of chunks (text, images, documents, audio, files).
public enum MessageContent: Sendable, Hashable, ExpressibleByStringLiteral {
    case text(String)
    case chunks([ContentChunk])

    public init(stringLiteral text: String) { self = .text(text) }

    /// The text of the content, its text chunks joined: for a destination that takes text only
    /// (a conversation's `function.result`, a log line).
    public var text: String {
        switch self {
        case .text(let text): text
        case .chunks(let chunks): chunks.compactMap(\.text).joined()
        }
    }

    /// In Mistral's shapes, which are also the wire protocol's.
    public var json: JSONValue {
        switch self {
        case .text(let text): .string(text)
        case .chunks(let chunks): .array(chunks.map(\.json))
        }
    }
}

/// One part of a message `content` sent as a list of chunks (CONTRACT §4), in Mistral's shapes.
public enum ContentChunk: Sendable, Hashable {
    case text(String)
    /// An https URL or a `data:image/...;base64,` URL; `detail` is Mistral's `low`/`high`/`auto`.
    case imageURL(url: String, detail: String?)
    case documentURL(url: String, name: String?)
    /// Base64 audio.
    case inputAudio(String)
    /// A file uploaded to Mistral beforehand.
    case file(id: String)

    /// The chunk's `type` on the wire.
    public var typeName: String {
        switch self {
        case .text: "text"
        case .imageURL: "image_url"
        case .documentURL: "document_url"
        case .inputAudio: "input_audio"
        case .file: "file"
        }
    }

    /// The chunk's text, for text chunks.
    public var text: String? {
        if case .text(let text) = self { return text }
        return nil
    }

    public var json: JSONValue {
        switch self {
        case .text(let text):
            return ["type": "text", "text": .string(text)]
        case .imageURL(let url, let detail):
            let image: JSONValue = detail.map { ["url": .string(url), "detail": .string($0)] } ?? .string(url)
            return ["type": "image_url", "image_url": image]
        case .documentURL(let url, let name):
            var object: JSONObject = ["type": "document_url", "document_url": .string(url)]
            object["document_name"] = name.map(JSONValue.string)
            return .object(object)
        case .inputAudio(let audio):
            return ["type": "input_audio", "input_audio": .string(audio)]
        case .file(let id):
            return ["type": "file", "file_id": .string(id)]
        }
    }
}
