import AgentProtocol
import JSON

/// Reads one Mistral reply — a stream of server-sent events or one JSON body — and turns it into
/// the events a consumer sees. Text, thinking, references, files, built-in tool runs and handoffs
/// are passed on as they arrive; tool calls are accumulated (by `index` for chat, by
/// `tool_call_id` for conversations) and emitted whole at the end, with the client's own ids
/// where the history used them. Any shape it cannot read is `upstream_protocol`; an event type
/// it does not know is skipped and counted in `ignoredEvents`, since Mistral adds new ones.
struct ReplyDecoder {
    private struct PartialCall {
        var id: String?
        var name: String?
        var argumentText = ""
        var argumentValue: JSONValue?
    }

    let format: PreparedRequest.ReplyFormat
    let toolCallIDs: ToolCallIDMap
    private var text = ""
    private var reasoning = ""
    private var citations: [Citation] = []
    private var files: [GeneratedFile] = []
    /// Conversation events of types this decoder does not know, by type.
    private(set) var ignoredEvents: [String: Int] = [:]
    private var callKeys: [String] = []
    private var calls: [String: PartialCall] = [:]
    private var finishReason: String?
    private var usage = Usage()
    private var model: String?
    /// True once the reply's end marker has been read; later bytes are not needed.
    private var isFinished = false

    /// The reply's rate-limit headers, handed on in its `Completion`.
    let rateLimitsRemaining: [String: Int64]

    init(format: PreparedRequest.ReplyFormat, toolCallIDs: ToolCallIDMap, rateLimitsRemaining: [String: Int64] = [:]) {
        self.format = format
        self.toolCallIDs = toolCallIDs
        self.rateLimitsRemaining = rateLimitsRemaining
    }

    /// Decodes one server-sent event (`event` is its `event:` name, if any).
    mutating func decode(event: String?, data: String) throws(ErrorInfo) -> [LLMEvent] {
        guard !isFinished else { return [] }
        if data == "[DONE]" { return finish() }
        if format == .chat,
            let chunk = try? JSONReader.read(
                data,
                { (reader) throws(JSONParseError) in
                    try Self.readPlainChunk(&reader, model: model)
                })
        {
            return try apply(chunk)
        }
        let value: JSONValue
        do {
            value = try JSONParser.parse(data)
        } catch {
            throw Self.protocolError("an event's data is not JSON (\(error))")
        }
        guard case .object(let object) = value else { throw Self.protocolError("an event's data is not a JSON object") }
        switch format {
        case .chat: return try decodeChunk(object)
        case .conversation: return try decodeConversationEvent(name: event ?? object["type"]?.stringValue, object)
        }
    }

    /// The stream ended. A chat stream that reported its finish reason is taken as complete even
    /// without `[DONE]`; anything else ended too early.
    mutating func endOfStream() throws(ErrorInfo) -> [LLMEvent] {
        guard !isFinished else { return [] }
        guard format == .chat, finishReason != nil else {
            throw Self.protocolError("the stream ended before the reply was complete")
        }
        return finish()
    }

    /// Decodes a whole non-stream reply (`ChatCompletionResponse` or `ConversationResponse`).
    mutating func decodeResponse(_ body: [UInt8]) throws(ErrorInfo) -> [LLMEvent] {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes: body)
        } catch {
            throw Self.protocolError("the reply is not JSON (\(error))")
        }
        guard case .object(let object) = value else { throw Self.protocolError("the reply is not a JSON object") }
        try readUsageAndModel(object)
        switch format {
        case .chat:
            guard let choice = try Self.array(object["choices"], "choices")?.first else {
                throw Self.protocolError("the reply has no choices")
            }
            guard case .object(let choiceObject) = choice, case .object(let message)? = choiceObject["message"] else {
                throw Self.protocolError("choices[0].message is not an object")
            }
            let events = try readChatDelta(message)
            finishReason = try Self.string(choiceObject["finish_reason"], "finish_reason") ?? "stop"
            return Self.mergingText(events) + finish()
        case .conversation:
            guard let outputs = try Self.array(object["outputs"], "outputs") else {
                throw Self.protocolError("the reply has no outputs")
            }
            var events: [LLMEvent] = []
            for case .object(let entry) in outputs {
                switch entry["type"]?.stringValue {
                case "message.output":
                    events += try readContent(entry["content"])
                    model = entry["model"]?.stringValue ?? model
                case "function.call":
                    try accumulateCall(key: Self.string(entry["tool_call_id"], "tool_call_id") ?? "", entry)
                case "tool.execution":
                    events.append(.toolExecution(try Self.toolExecution(entry, state: .done)))
                case "agent.handoff":
                    events += try Self.handoff(entry, state: .started)
                    events += try Self.handoff(entry, state: .done)
                default: continue
                }
            }
            return Self.mergingText(events) + finish()
        }
    }

    /// A whole reply's text as one `.text` event, where the content walk found it in pieces.
    private static func mergingText(_ events: [LLMEvent]) -> [LLMEvent] {
        var merged: [LLMEvent] = []
        for event in events {
            if case .text(let piece) = event, case .text(let before)? = merged.last {
                merged[merged.count - 1] = .text(before + piece)
            } else {
                merged.append(event)
            }
        }
        return merged
    }

    // MARK: Chat chunks

    private mutating func decodeChunk(_ chunk: JSONObject) throws(ErrorInfo) -> [LLMEvent] {
        if chunk["object"]?.stringValue == "error" {
            throw Self.protocolError(
                "the stream carried an error: \(ErrorBody.message(from: .object(chunk)) ?? "no message")")
        }
        try readUsageAndModel(chunk)
        var events: [LLMEvent] = []
        for case .object(let choice) in try Self.array(chunk["choices"], "choices") ?? [] {
            if let delta = choice["delta"], !delta.isNull {
                guard case .object(let deltaObject) = delta else { throw Self.protocolError("delta is not an object") }
                events += try readChatDelta(deltaObject)
            }
            if let reason = try Self.string(choice["finish_reason"], "finish_reason") { finishReason = reason }
        }
        return events
    }

    /// What a chat chunk of the usual shape carries: a text piece per choice, perhaps a finish
    /// reason, and on the last chunk the usage.
    struct PlainChunk: Equatable {
        var model: String?
        var usage: JSONValue?
        var pieces: [String] = []
        var finishReason: String?
    }

    /// Reads a chunk without building its tree when it has the shape nearly every chunk of a
    /// chat stream has: members `id`, `object`, `created`, `model`, `choices`, `usage` and `p`
    /// (padding); choices with `index`, `logprobs`, `finish_reason` (a string or null) and a
    /// `delta` of `role` and `content` (a string or null); `object`, when there, must be
    /// `chat.completion.chunk`. Anything else — another member, a repeated one, content chunks,
    /// tool calls, an error object — is nil, and the chunk goes to the parser and `decodeChunk`,
    /// which read every shape. Nothing of the decoder's state changes here, so giving up
    /// half-way loses nothing. `known` is the model read so far, which each chunk repeats.
    static func readPlainChunk(_ reader: inout JSONReader, model known: String?) throws(JSONParseError) -> PlainChunk? {
        var chunk = PlainChunk()
        var seen = Members()
        try reader.beginObject()
        while let key = try reader.nextKey() {
            if key.is("choices") {
                guard seen.first(0), try reader.peekKind() == .array else { return nil }
                try reader.beginArray()
                while try reader.nextElement() {
                    guard try readPlainChoice(&reader, into: &chunk) else { return nil }
                }
            } else if key.is("model") {
                guard seen.first(1) else { return nil }
                switch try reader.peekKind() {
                case .string: chunk.model = try reader.readString(usually: known)
                case .null: try reader.skipValue()
                default: return nil
                }
            } else if key.is("object") {
                guard seen.first(2), try reader.peekKind() == .string,
                    try reader.readString(is: "chat.completion.chunk")
                else { return nil }
            } else if key.is("usage") {
                guard seen.first(3) else { return nil }
                chunk.usage = try reader.readValue()
            } else if key.is("id") || key.is("created") || key.is("p") {
                guard seen.first(key.is("id") ? 4 : key.is("created") ? 5 : 6) else { return nil }
                try reader.skipValue()
            } else {
                return nil
            }
        }
        return chunk
    }

    /// One element of `choices`, as `readPlainChunk` reads it; false when it is not plain.
    private static func readPlainChoice(_ reader: inout JSONReader, into chunk: inout PlainChunk)
        throws(JSONParseError) -> Bool
    {
        guard try reader.peekKind() == .object else { return false }
        var seen = Members()
        try reader.beginObject()
        while let key = try reader.nextKey() {
            if key.is("delta") {
                guard seen.first(0) else { return false }
                switch try reader.peekKind() {
                case .null: try reader.skipValue()
                case .object:
                    var deltaSeen = Members()
                    try reader.beginObject()
                    while let deltaKey = try reader.nextKey() {
                        if deltaKey.is("content") {
                            guard deltaSeen.first(0) else { return false }
                            switch try reader.peekKind() {
                            case .string: chunk.pieces.append(try reader.readString())
                            case .null: try reader.skipValue()
                            default: return false
                            }
                        } else if deltaKey.is("role") {
                            guard deltaSeen.first(1) else { return false }
                            try reader.skipValue()
                        } else {
                            return false
                        }
                    }
                default: return false
                }
            } else if key.is("finish_reason") {
                guard seen.first(1) else { return false }
                switch try reader.peekKind() {
                case .string: chunk.finishReason = try reader.readString()
                case .null: try reader.skipValue()
                default: return false
                }
            } else if key.is("index") || key.is("logprobs") {
                guard seen.first(key.is("index") ? 2 : 3) else { return false }
                try reader.skipValue()
            } else {
                return false
            }
        }
        return true
    }

    /// The members of one object met so far, by position in a short list of names: the parser
    /// rejects a repeated key, so a plain read must not accept one.
    private struct Members {
        private var bits: UInt8 = 0

        /// True the first time `position` is met.
        mutating func first(_ position: Int) -> Bool {
            let bit = UInt8(1) << position
            defer { bits |= bit }
            return bits & bit == 0
        }
    }

    /// A plain chunk's effect, in the order `decodeChunk` has for the same chunk: model and
    /// usage, then each choice's text and finish reason.
    private mutating func apply(_ chunk: PlainChunk) throws(ErrorInfo) -> [LLMEvent] {
        if let name = chunk.model { model = name }
        try readUsage(chunk.usage)
        var events: [LLMEvent] = []
        for piece in chunk.pieces { events += try readContent(.string(piece)) }
        if let reason = chunk.finishReason { finishReason = reason }
        return events
    }

    /// Reads a `DeltaMessage` or an `AssistantMessage`: content and tool calls. Returns the
    /// content's events.
    private mutating func readChatDelta(_ message: JSONObject) throws(ErrorInfo) -> [LLMEvent] {
        let added = try readContent(message["content"])
        for (position, call) in (try Self.array(message["tool_calls"], "tool_calls") ?? []).enumerated() {
            guard case .object(let callObject) = call else { throw Self.protocolError("a tool call is not an object") }
            let index = callObject["index"]?.intValue ?? Int64(position)
            var fields: JSONObject = callObject["function"]?.objectValue ?? [:]
            fields["tool_call_id"] = callObject["id"]
            try accumulateCall(key: String(index), fields)
        }
        return added
    }

    /// Walks `content` — a string, null, one chunk or a list of them — in order: text and
    /// thinking (whose own list may hold references), `tool_reference` and `tool_file` chunks.
    /// Other chunk types (`reference` pointers, images) carry nothing a client is shown.
    private mutating func readContent(_ content: JSONValue?, thinking: Bool = false) throws(ErrorInfo) -> [LLMEvent] {
        switch content {
        case nil, .null?:
            return []
        case .string(let piece)?:
            guard !piece.isEmpty else { return [] }
            if thinking {
                reasoning += piece
                return [.reasoning(piece)]
            }
            text += piece
            return [.text(piece)]
        case .array(let chunks)?:
            var events: [LLMEvent] = []
            for chunk in chunks { events += try readContent(chunk, thinking: thinking) }
            return events
        case .object(let chunk)?:
            switch chunk["type"]?.stringValue {
            case "text":
                return try readContent(.string(Self.string(chunk["text"], "text") ?? ""), thinking: thinking)
            case "thinking":
                return try readContent(chunk["thinking"], thinking: true)
            case "tool_reference":
                let citation = Citation(
                    tool: try Self.string(chunk["tool"], "tool") ?? "",
                    title: try Self.string(chunk["title"], "title") ?? "",
                    url: try Self.string(chunk["url"], "url"), favicon: try Self.string(chunk["favicon"], "favicon"),
                    description: try Self.string(chunk["description"], "description"))
                citations.append(citation)
                return [.citation(citation)]
            case "tool_file":
                let file = GeneratedFile(
                    fileID: try Self.string(chunk["file_id"], "file_id") ?? "",
                    fileName: try Self.string(chunk["file_name"], "file_name"),
                    fileType: try Self.string(chunk["file_type"], "file_type"),
                    tool: try Self.string(chunk["tool"], "tool") ?? "")
                files.append(file)
                return [.file(file)]
            default:
                return []
            }
        case let other?:
            throw Self.protocolError("content is a \(other.typeName)")
        }
    }

    // MARK: Conversation events

    private mutating func decodeConversationEvent(name: String?, _ event: JSONObject) throws(ErrorInfo) -> [LLMEvent] {
        switch name {
        case "message.output.delta":
            model = event["model"]?.stringValue ?? model
            return try readContent(event["content"])
        case "function.call.delta":
            let callID = try Self.string(event["tool_call_id"], "tool_call_id")
            let entryID = try Self.string(event["id"], "id")
            try accumulateCall(key: callID ?? entryID ?? "", event)
            return []
        case "tool.execution.started":
            return [.toolExecution(try Self.toolExecution(event, state: .started))]
        case "tool.execution.delta":
            return [.toolExecution(try Self.toolExecution(event, state: .delta))]
        case "tool.execution.done":
            return [.toolExecution(try Self.toolExecution(event, state: .done))]
        case "agent.handoff.started":
            return try Self.handoff(event, state: .started)
        case "agent.handoff.done":
            return try Self.handoff(event, state: .done)
        case "conversation.response.started":
            return []
        case "conversation.response.done":
            try readUsageAndModel(event)
            return finish()
        case "conversation.response.error":
            let code = event["code"].map { $0.stringValue ?? $0.jsonText }
            let message = ErrorBody.message(from: .object(event)) ?? "no message"
            throw ErrorInfo(
                code: .agentError,
                message: "the Mistral agent failed: \(message)" + (code.map { " (code \($0))" } ?? "")
            )
        default:
            ignoredEvents[name ?? "(untyped)", default: 0] += 1
            return []
        }
    }

    private static func toolExecution(_ event: JSONObject, state: ToolExecution.State) throws(ErrorInfo)
        -> ToolExecution
    {
        let arguments: String? =
            switch event["arguments"] {
            case nil, .null?: nil
            case .string(let text)?: text
            case let other?: other.jsonText
            }
        let info = event["info"].flatMap { $0.isNull ? nil : $0 }
        return ToolExecution(
            id: try string(event["id"], "id") ?? "", name: try string(event["name"], "name") ?? "", state: state,
            arguments: state == .done ? nil : arguments, info: state == .done ? info : nil)
    }

    /// `started` names the agent handing over, `done` the one taking over; a whole
    /// `agent.handoff` entry names both.
    private static func handoff(_ event: JSONObject, state: Handoff.State) throws(ErrorInfo) -> [LLMEvent] {
        let side = state == .started ? "previous" : "next"
        return [
            .handoff(
                Handoff(
                    state: state, id: try string(event["id"], "id"),
                    agentID: try string(event["\(side)_agent_id"], "\(side)_agent_id"),
                    agentName: try string(event["\(side)_agent_name"], "\(side)_agent_name")))
        ]
    }

    // MARK: Shared

    /// Merges a piece of a call: `name`, `tool_call_id`, and `arguments` (text appended, or an object).
    private mutating func accumulateCall(key: String, _ fields: JSONObject) throws(ErrorInfo) {
        if calls[key] == nil {
            callKeys.append(key)
            calls[key] = PartialCall()
        }
        if let id = try Self.string(fields["tool_call_id"], "tool_call_id"), !id.isEmpty { calls[key]!.id = id }
        if let name = try Self.string(fields["name"], "name"), !name.isEmpty { calls[key]!.name = name }
        switch fields["arguments"] {
        case .string(let piece)?: calls[key]!.argumentText += piece
        case .object(let object)?: calls[key]!.argumentValue = .object(object)
        case nil, .null?: break
        case let other?: throw Self.protocolError("tool call arguments are a \(other.typeName)")
        }
    }

    private mutating func readUsageAndModel(_ object: JSONObject) throws(ErrorInfo) {
        if let name = try Self.string(object["model"], "model") { model = name }
        try readUsage(object["usage"])
    }

    private mutating func readUsage(_ usageValue: JSONValue?) throws(ErrorInfo) {
        guard let usageValue, !usageValue.isNull else { return }
        guard case .object(let counts) = usageValue else { throw Self.protocolError("usage is not an object") }
        // Bounded, so that sums over steps and requests cannot overflow whatever upstream says.
        func count(_ value: JSONValue?) -> Int { Int(min(max(value?.intValue ?? 0, 0), Self.maxTokenCount)) }
        func count(_ key: String) -> Int { count(counts[key]) }
        let cached = count(counts["prompt_tokens_details"]?["cached_tokens"])
        usage = Usage(
            promptTokens: count("prompt_tokens"), completionTokens: count("completion_tokens"),
            totalTokens: count("total_tokens"), cachedTokens: cached, connectorTokens: count("connector_tokens")
        )
    }

    /// Ends the reply: every accumulated tool call, then `done`.
    private mutating func finish() -> [LLMEvent] {
        isFinished = true
        let toolCalls = callKeys.map { key in
            let call = calls[key]!
            let id = call.id ?? key
            return ToolCall(
                id: toolCallIDs.clientID(for: id), name: call.name ?? "",
                arguments: call.argumentValue ?? Self.arguments(call.argumentText)
            )
        }
        let reason = finishReason ?? (toolCalls.isEmpty ? "stop" : "tool_calls")
        let completion = Completion(
            text: text, toolCalls: toolCalls, finishReason: reason, usage: usage, model: model, reasoning: reasoning,
            citations: citations, files: files, rateLimitsRemaining: rateLimitsRemaining)
        return toolCalls.map(LLMEvent.toolCall) + [.done(completion)]
    }

    /// Arguments arrive as a string holding JSON; an object is handed on as an object, anything
    /// else (unparsable, or not an object) as the string it was.
    private static func arguments(_ text: String) -> JSONValue {
        if text.isEmpty { return .object([:]) }
        if case .object(let object)? = try? JSONParser.parse(text) { return .object(object) }
        return .string(text)
    }

    private static func string(_ value: JSONValue?, _ field: String) throws(ErrorInfo) -> String? {
        switch value {
        case nil, .null?: return nil
        case .string(let string)?: return string
        case let other?: throw protocolError("\(field) is a \(other.typeName), not a string")
        }
    }

    private static func array(_ value: JSONValue?, _ field: String) throws(ErrorInfo) -> [JSONValue]? {
        switch value {
        case nil, .null?: return nil
        case .array(let elements)?: return elements
        case let other?: throw protocolError("\(field) is a \(other.typeName), not an array")
        }
    }

    /// A trillion tokens: far beyond any reply, far below where `Int` sums could overflow.
    private static let maxTokenCount: Int64 = 1 << 40

    static func protocolError(_ detail: String) -> ErrorInfo {
        ErrorInfo(code: .upstreamProtocol, message: "unexpected reply from Mistral: \(detail)")
    }
}
