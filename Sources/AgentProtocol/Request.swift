import JSON

/// A request line of an agent socket (or a control `chat`), decoded but not yet checked
/// against the agent: `options` need the agent's mode and tools.
public struct ChatRequest: Sendable {
    public var id: RequestID
    public var messages: [ChatMessage]
    public var stream: Bool
    public var options: JSONValue?
    /// The session this request continues (contract §9), already checked against its pattern.
    public var session: String?

    public init(
        id: RequestID, messages: [ChatMessage], stream: Bool = true, options: JSONValue? = nil, session: String? = nil
    ) {
        self.id = id
        self.messages = messages
        self.stream = stream
        self.options = options
        self.session = session
    }
}

/// What one inbound line asks for.
public enum WireCommand: Sendable {
    case chat(ChatRequest)
    case cancel(RequestID)
    /// Control socket only.
    case control(id: RequestID, command: String, body: JSONObject)
}

/// A line that broke the protocol, with the id when the line carried a usable one.
public struct WireError: Error, Sendable {
    public var id: RequestID?
    public var info: ErrorInfo

    public init(id: RequestID?, _ message: String, code: ErrorCode = .badRequest) {
        self.id = id
        self.info = ErrorInfo(code: code, message: message)
    }
}
