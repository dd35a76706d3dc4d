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
        var limits = ContentLimits()
        if let history = object["messages"] {
            guard case .array(let elements) = history else {
                throw WireError(id: id, "messages: must be an array, got \(history.typeName)")
            }
            for (index, element) in elements.enumerated() {
                messages.append(try decodeMessage(element, path: "messages[\(index)]", id: id, limits: &limits))
            }
        }
        if let input = object["input"] {
            guard let text = input.stringValue else {
                throw WireError(id: id, "input: must be a string, got \(input.typeName)")
            }
            messages.append(ChatMessage(role: .user, content: .text(text)))
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

    private func decodeMessage(
        _ value: JSONValue, path: String, id: RequestID, limits: inout ContentLimits
    ) throws(WireError) -> ChatMessage {
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
        case .string(let text)?: message.content = .text(text)
        case .array(let parts)?:
            let chunks = try decodeChunks(parts, path: "\(path).content", id: id, limits: &limits)
            if role == .system, let index = chunks.firstIndex(where: { $0.text == nil }) {
                throw WireError(id: id, "\(path).content[\(index)]: a system message takes text chunks only")
            }
            message.content = .chunks(chunks)
        case let other?:
            throw WireError(id: id, "\(path).content: must be a string or a list of chunks, got \(other.typeName)")
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

    /// A content list in Mistral's chunk shapes, checked before anything is sent: known types
    /// and fields only, URLs Mistral can fetch, well-formed base64 within the size bound, and at
    /// most `ContentLimits.maxImages` images in the whole request.
    private func decodeChunks(
        _ parts: [JSONValue], path: String, id: RequestID, limits: inout ContentLimits
    ) throws(WireError) -> [ContentChunk] {
        var chunks: [ContentChunk] = []
        for (index, part) in parts.enumerated() {
            let chunkPath = "\(path)[\(index)]"
            do throws(ChunkProblem) {
                let chunk = try ContentChunk(decoding: part)
                if case .imageURL = chunk {
                    limits.images += 1
                    guard limits.images <= ContentLimits.maxImages else {
                        throw ChunkProblem("more than \(ContentLimits.maxImages) images in one request")
                    }
                }
                chunks.append(chunk)
            } catch {
                throw WireError(id: id, "\(chunkPath)\(error.field.map { ".\($0)" } ?? ""): \(error.message)")
            }
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

/// What a request's content chunks add up to, against the bounds checked locally.
struct ContentLimits {
    /// Mistral's own bound on images per request.
    static let maxImages = 8
    /// The largest `data:` URL or base64 audio accepted, decoded: 10 MiB, Mistral's bound.
    static let maxInlineBytes = 10 << 20

    var images = 0
}

/// Why one content chunk was refused; `field` is the member at fault, if one is.
struct ChunkProblem: Error {
    var field: String?
    var message: String

    init(_ message: String, field: String? = nil) {
        self.field = field
        self.message = message
    }
}

extension ContentChunk {
    private static let fields: [String: Set<String>] = [
        "text": ["type", "text"], "image_url": ["type", "image_url"],
        "document_url": ["type", "document_url", "document_name"], "input_audio": ["type", "input_audio"],
        "file": ["type", "file_id"],
    ]

    /// Reads one chunk of a request's content, as strictly as Mistral does.
    init(decoding value: JSONValue) throws(ChunkProblem) {
        guard case .object(let object) = value else { throw ChunkProblem("must be an object, got \(value.typeName)") }
        guard let type = object["type"]?.stringValue else {
            throw ChunkProblem("required, one of \(Self.typeList)", field: "type")
        }
        guard let known = Self.fields[type] else {
            throw ChunkProblem("\"\(type)\" is not a chunk type agentd sends (\(Self.typeList))", field: "type")
        }
        if let extra = object.keys.first(where: { !known.contains($0) }) {
            throw ChunkProblem("unknown field for a \(type) chunk", field: extra)
        }
        func string(_ key: String) throws(ChunkProblem) -> String {
            guard let text = object[key]?.stringValue else {
                throw ChunkProblem("required, a string", field: key)
            }
            return text
        }
        switch type {
        case "text":
            self = .text(try string("text"))
        case "image_url":
            let url: String
            var detail: String?
            switch object["image_url"] {
            case .string(let text)?:
                url = text
            case .object(let image)?:
                if let extra = image.keys.first(where: { $0 != "url" && $0 != "detail" }) {
                    throw ChunkProblem("unknown field (url, detail)", field: "image_url.\(extra)")
                }
                guard let text = image["url"]?.stringValue else {
                    throw ChunkProblem("required, a string", field: "image_url.url")
                }
                url = text
                if let value = image["detail"], value != .null {
                    guard let text = value.stringValue, ["low", "high", "auto"].contains(text) else {
                        throw ChunkProblem("must be low, high or auto", field: "image_url.detail")
                    }
                    detail = text
                }
            default:
                throw ChunkProblem("required, a URL or {url, detail}", field: "image_url")
            }
            try Self.checkURL(url, field: "image_url", dataPrefix: "data:image/")
            self = .imageURL(url: url, detail: detail)
        case "document_url":
            let url = try string("document_url")
            try Self.checkURL(url, field: "document_url", dataPrefix: "data:")
            var name: String?
            if let value = object["document_name"], value != .null {
                guard let text = value.stringValue else {
                    throw ChunkProblem("must be a string", field: "document_name")
                }
                name = text
            }
            self = .documentURL(url: url, name: name)
        case "input_audio":
            let audio = try string("input_audio")
            try Self.checkBase64(audio[...], field: "input_audio")
            self = .inputAudio(audio)
        default:
            let fileID = try string("file_id")
            guard Self.isUUID(fileID) else {
                throw ChunkProblem("must be the UUID Mistral gave the uploaded file", field: "file_id")
            }
            self = .file(id: fileID)
        }
    }

    private static let typeList = "text, image_url, document_url, input_audio, file"

    /// `8-4-4-4-12` hexadecimal digits, as Mistral's file ids are.
    private static func isUUID(_ text: String) -> Bool {
        let groups = text.split(separator: "-", omittingEmptySubsequences: false)
        return groups.map(\.count) == [8, 4, 4, 4, 12] && groups.allSatisfy { $0.allSatisfy(\.isHexDigit) }
    }

    /// An https URL, or a base64 `data:` URL whose media type starts with `dataPrefix`.
    private static func checkURL(_ url: String, field: String, dataPrefix: String) throws(ChunkProblem) {
        if url.hasPrefix("https://") { return }
        guard url.hasPrefix("data:") else {
            throw ChunkProblem("must be an https URL or a base64 data: URL", field: field)
        }
        guard url.hasPrefix(dataPrefix), let comma = url.firstIndex(of: ","),
            url[..<comma].hasSuffix(";base64")
        else {
            throw ChunkProblem("a data: URL must be \(dataPrefix)...;base64,...", field: field)
        }
        try checkBase64(url[url.index(after: comma)...], field: field)
    }

    /// Well-formed, padded base64 whose decoded size is within `ContentLimits.maxInlineBytes`.
    private static func checkBase64(_ text: Substring, field: String) throws(ChunkProblem) {
        let bytes = text.utf8
        guard !bytes.isEmpty, bytes.count % 4 == 0 else {
            throw ChunkProblem("is not well-formed base64 (its length is not a multiple of 4)", field: field)
        }
        let padding = bytes.reversed().prefix { $0 == UInt8(ascii: "=") }.count
        let decoded = bytes.count / 4 * 3 - padding
        guard decoded <= ContentLimits.maxInlineBytes else {
            throw ChunkProblem(
                "holds \(decoded) bytes; at most \(ContentLimits.maxInlineBytes) (10 MiB) may be sent inline",
                field: field)
        }
        let isAlphabet = { (byte: UInt8) in
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "/"):
                true
            default: false
            }
        }
        guard padding <= 2, bytes.dropLast(padding).allSatisfy(isAlphabet) else {
            throw ChunkProblem("is not well-formed base64", field: field)
        }
    }
}
