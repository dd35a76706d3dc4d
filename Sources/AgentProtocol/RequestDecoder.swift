import JSON

/// Decodes request lines (CONTRACT §4). Every rejection names the field at fault.
public struct RequestDecoder: Sendable {
    /// Assigns ids to requests that carry none.
    public let makeID: @Sendable () -> RequestID
    /// Control sockets accept `command` lines; agent sockets do not.
    public let acceptsCommands: Bool

    public init(makeID: @escaping @Sendable () -> RequestID, acceptsCommands: Bool) {
        self.makeID = makeID
        self.acceptsCommands = acceptsCommands
    }

    public static let chatKeys: Set<String> = ["id", "messages", "input", "stream", "options", "session"]
    static let messageKeys: Set<String> = ["role", "content", "tool_calls", "tool_call_id", "name"]

    public func decode(_ bytes: some Collection<UInt8>) -> Result<WireCommand, WireError> {
        Result { () throws(WireError) in try decodeOrThrow(bytes) }
    }

    private func decodeOrThrow(_ bytes: some Collection<UInt8>) throws(WireError) -> WireCommand {
        let document: JSONValue
        do {
            document = try JSONParser.parse(bytes: bytes)
        } catch {
            throw WireError(id: nil, "request is not valid JSON: \(error)")
        }
        guard case .object(let object) = document else {
            throw WireError(id: nil, "request must be a JSON object, got \(document.typeName)")
        }
        let id = try object["id"].map { value throws(WireError) in
            guard let id = RequestID(value) else {
                throw WireError(id: nil, "id: must be a string or an integer, got \(value.typeName)")
            }
            return id
        }

        if let target = object["cancel"] {
            guard let cancelled = RequestID(target) else {
                throw WireError(id: id, "cancel: must be the id (string or integer) of a request in flight")
            }
            if let extra = object.keys.first(where: { $0 != "cancel" && $0 != "id" }) {
                throw WireError(id: cancelled, "\(extra): not allowed in a cancel line")
            }
            return .cancel(cancelled)
        }

        if let command = object["command"] {
            let id = id ?? makeID()
            guard acceptsCommands else {
                throw WireError(id: id, "command: only the control socket takes commands")
            }
            guard let name = command.stringValue else {
                throw WireError(id: id, "command: must be a string")
            }
            return .control(id: id, command: name, body: object)
        }

        return .chat(try decodeChat(object, id: id ?? makeID(), allowedKeys: Self.chatKeys))
    }

    /// Also used for control `chat`, whose lines carry `command` and `agent` besides.
    public func decodeChat(_ object: JSONObject, id: RequestID, allowedKeys: Set<String>) throws(WireError)
        -> ChatRequest
    {
        if let unknown = object.keys.first(where: { !allowedKeys.contains($0) }) {
            throw WireError(
                id: id, "\(unknown): unknown field (expected one of \(allowedKeys.sorted().joined(separator: ", ")))")
        }
        var messages: [ChatMessage] = []
        if let history = object["messages"] {
            guard case .array(let elements) = history else {
                throw WireError(id: id, "messages: must be an array, got \(history.typeName)")
            }
            for (index, element) in elements.enumerated() {
                messages.append(try decodeMessage(element, path: "messages[\(index)]", id: id))
            }
        }
        if let input = object["input"] {
            guard let text = input.stringValue else {
                throw WireError(id: id, "input: must be a string, got \(input.typeName)")
            }
            messages.append(ChatMessage(role: .user, content: text))
        }
        guard object["messages"] != nil || object["input"] != nil else {
            throw WireError(id: id, "messages or input: a request needs at least one of them")
        }
        guard !messages.isEmpty else {
            throw WireError(id: id, "messages: is empty and there is no input")
        }
        var stream = true
        if let value = object["stream"] {
            guard let flag = value.boolValue else {
                throw WireError(id: id, "stream: must be true or false, got \(value.typeName)")
            }
            stream = flag
        }
        var options: JSONValue?
        if let value = object["options"] {
            guard case .object = value else {
                throw WireError(id: id, "options: must be an object, got \(value.typeName)")
            }
            options = value
        }
        let session = try object["session"].map { value throws(WireError) in try Self.sessionName(value, id: id) }
        return ChatRequest(id: id, messages: messages, stream: stream, options: options, session: session)
    }

    /// `session`: `^[A-Za-z0-9._:-]{1,128}$` (contract §4); also the control socket's
    /// `session` and `forget` commands.
    public static func sessionName(_ value: JSONValue, id: RequestID) throws(WireError) -> String {
        guard let name = value.stringValue else {
            throw WireError(id: id, "session: must be a string, got \(value.typeName)")
        }
        let allowed = { (byte: UInt8) in
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"),
                UInt8(ascii: "-"):
                true
            default: false
            }
        }
        guard (1...128).contains(name.utf8.count), name.utf8.allSatisfy(allowed) else {
            throw WireError(id: id, "session: must match ^[A-Za-z0-9._:-]{1,128}$")
        }
        return name
    }

    private func decodeMessage(_ value: JSONValue, path: String, id: RequestID) throws(WireError) -> ChatMessage {
        guard case .object(let object) = value else {
            throw WireError(id: id, "\(path): must be an object, got \(value.typeName)")
        }
        if let unknown = object.keys.first(where: { !Self.messageKeys.contains($0) }) {
            throw WireError(id: id, "\(path).\(unknown): unknown field")
        }
        guard let roleName = object["role"]?.stringValue else {
            throw WireError(id: id, "\(path).role: required, one of system, user, assistant, tool")
        }
        guard let role = Role(rawValue: roleName) else {
            throw WireError(id: id, "\(path).role: \"\(roleName)\" is not one of system, user, assistant, tool")
        }
        var message = ChatMessage(role: role)
        switch object["content"] {
        case nil, .null?: break
        case .string(let text)?: message.content = text
        case .array(let parts)?:
            message.content = try decodeChunks(parts, path: "\(path).content", id: id).map(\.text).joined()
        case let other?: throw WireError(id: id, "\(path).content: must be a string, got \(other.typeName)")
        }
        if let calls = object["tool_calls"], calls != .null {
            guard role == .assistant else {
                throw WireError(id: id, "\(path).tool_calls: only assistant messages carry tool calls")
            }
            guard case .array(let elements) = calls else {
                throw WireError(id: id, "\(path).tool_calls: must be an array, got \(calls.typeName)")
            }
            for (index, call) in elements.enumerated() {
                message.toolCalls.append(try decodeToolCall(call, path: "\(path).tool_calls[\(index)]", id: id))
            }
        }
        if let callID = object["tool_call_id"], callID != .null {
            guard role == .tool, let text = callID.stringValue else {
                throw WireError(id: id, "\(path).tool_call_id: only tool messages carry one, as a string")
            }
            message.toolCallID = text
        }
        if role == .tool, message.toolCallID == nil {
            throw WireError(id: id, "\(path).tool_call_id: required on tool messages")
        }
        if let name = object["name"], name != .null {
            guard let text = name.stringValue else {
                throw WireError(id: id, "\(path).name: must be a string, got \(name.typeName)")
            }
            message.name = text
        }
        return message
    }

    /// A content list: Mistral's (and OpenAI's) `{"type":"text","text":…}` chunks.
    private func decodeChunks(_ parts: [JSONValue], path: String, id: RequestID) throws(WireError) -> [ContentChunk] {
        var chunks: [ContentChunk] = []
        for (index, part) in parts.enumerated() {
            guard part["type"]?.stringValue == "text", let text = part["text"]?.stringValue else {
                throw WireError(id: id, "\(path)[\(index)]: only {\"type\":\"text\",\"text\":…} parts are supported")
            }
            chunks.append(.text(text))
        }
        return chunks
    }

    /// Accepts `{"id","name","arguments"}` and OpenAI's `{"id","type":"function","function":{"name","arguments"}}`.
    private func decodeToolCall(_ value: JSONValue, path: String, id: RequestID) throws(WireError) -> ToolCall {
        guard let callID = value["id"]?.stringValue, !callID.isEmpty else {
            throw WireError(id: id, "\(path).id: required, a non-empty string")
        }
        let function = value["function"] ?? value
        guard let name = function["name"]?.stringValue, !name.isEmpty else {
            throw WireError(id: id, "\(path).name: required, a non-empty string")
        }
        let arguments = function["arguments"] ?? .object([:])
        switch arguments {
        case .object, .string: break
        default:
            throw WireError(id: id, "\(path).arguments: must be an object or a JSON string, got \(arguments.typeName)")
        }
        return ToolCall(id: callID, name: name, arguments: arguments)
    }
}
