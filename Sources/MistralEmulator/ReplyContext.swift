import JSON

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Builds the reply to one valid request: the deterministic content, in the endpoint's shape,
/// with the request's faults applied.
struct ReplyContext {
    let endpoint: EmulatorAPI.Endpoint
    let request: JSONValue
    let turns: [Turn]
    let directives: Directives
    let model: String
    let streaming: Bool
    let serial: UInt64

    struct Call {
        var id: String
        var name: String
        var arguments: String
    }

    /// Words cycled through for `[words:N]`.
    static let vocabulary = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit"]

    private var isConversation: Bool { endpoint == .conversations }
    private let created = Int64(time(nil))

    init(
        endpoint: EmulatorAPI.Endpoint, request: JSONValue, turns: [Turn], directives: Directives,
        model: String, streaming: Bool, serial: UInt64
    ) {
        self.endpoint = endpoint
        self.request = request
        self.turns = turns
        self.directives = directives
        self.model = model
        self.streaming = streaming
        self.serial = serial
    }

    func reply(faults: [Directives.Fault]) -> Reply {
        var reply = faultReply(faults) ?? successReply(agentError: faults.contains(.agentError))
        reply.delayMilliseconds = directives.delayMilliseconds
        if faults.contains(.slow) { reply.chunkIntervalMilliseconds = 100 }
        if faults.contains(.malformed) { reply.body = malformed(reply.body) }
        if faults.contains(.reset) { reply.interruption = .reset }
        if faults.contains(.stall) { reply.interruption = .stall }
        if faults.contains(.stallHead) { reply.interruption = .stallHead }
        if faults.contains(.stallAfterHead) { reply.interruption = .stallAfterHead }
        return reply
    }

    /// The error a status fault (or an agent error outside a conversation stream) answers with.
    private func faultReply(_ faults: [Directives.Fault]) -> Reply? {
        for fault in faults {
            switch fault {
            case .status(429, let retryAfter):
                var reply = Reply.mistralError(429, "Rate limit exceeded", type: "rate_limited", code: "1300")
                reply.headers.append((name: "Retry-After", value: String(retryAfter ?? 1)))
                return reply
            case .status(400, _):
                return .mistralError(400, "Emulated bad request", type: "invalid_request_error", code: nil)
            case .status(let status, _):
                return Self.serverError(status)
            case .agentError where !(isConversation && streaming):
                return Self.serverError(500)
            default: continue
            }
        }
        return nil
    }

    static func serverError(_ status: Int) -> Reply {
        let (message, type) =
            switch status {
            case 502: ("Bad gateway", "bad_gateway")
            case 503: ("Service unavailable", "service_unavailable")
            case 504: ("Gateway timeout", "gateway_timeout")
            default: ("Internal server error", "internal_server_error")
            }
        return .mistralError(status, message, type: type, code: nil)
    }

    // MARK: Content

    private var lastTurn: Turn? { turns.last }

    /// The reply text in stream chunks: one word and its following space per chunk.
    private func textChunks() -> (chunks: [String], finishReason: String) {
        var words: [String]
        if lastTurn?.role == .tool {
            words = ["Tool", "result:"] + (lastTurn?.text ?? "").split(whereSeparator: \.isWhitespace).map(String.init)
        } else if let count = directives.words {
            words = (0..<count).map { Self.vocabulary[$0 % Self.vocabulary.count] }
        } else {
            words = ["Echo:"] + directives.remainingWords.map(String.init)
        }
        if let last = lastTurn, last.role == .assistant, last.prefix, !last.text.isEmpty {
            words.insert(last.text, at: 0)
        }
        var finishReason = "stop"
        if let limit = maxTokens, words.count > limit {
            words = Array(words.prefix(limit))
            finishReason = "length"
        }
        let chunks = words.enumerated().map { $0.offset < words.count - 1 ? $0.element + " " : $0.element }
        return (chunks, finishReason)
    }

    private var maxTokens: Int? {
        let value = isConversation ? request["completion_args"]?["max_tokens"] : request["max_tokens"]
        return value?.intValue.map { Int($0) }
    }

    /// The calls `[tool:NAME]` asks for, when the last message is the user's (so that the answer
    /// to a tool result is text, not the same call again) and NAME is a tool the request offers.
    private func calls() -> [Call] {
        guard lastTurn?.role == .user, !directives.tools.isEmpty else { return [] }
        let tools = (request["tools"]?.arrayValue ?? []).filter {
            ($0["type"]?.stringValue ?? "function") == "function"
        }
        let anyName = isConversation && tools.isEmpty
        return directives.tools.enumerated().compactMap { position, name in
            let tool = tools.first { $0["function"]?["name"]?.stringValue == name }
            guard tool != nil || anyName else { return nil }
            let arguments = Self.arguments(for: tool?["function"]?["parameters"])
            return Call(id: toolCallID(position), name: name, arguments: arguments.jsonText)
        }
    }

    /// `{}` with each required property set from its type: strings "42", numbers 42, booleans true.
    static func arguments(for parameters: JSONValue?) -> JSONValue {
        var arguments = JSONObject()
        let properties = parameters?["properties"]
        for name in parameters?["required"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
            let type =
                properties?[name]?["type"]?.stringValue ?? properties?[name]?["type"]?.arrayValue?.first?.stringValue
            arguments[name] =
                switch type {
                case "integer", "number": 42
                case "boolean": true
                case "array": []
                case "object": [:]
                default: "42"
                }
        }
        return .object(arguments)
    }

    private var promptTokens: Int {
        turns.reduce(0) { $0 + Self.wordCount($1.text) }
    }

    static func wordCount(_ text: String) -> Int {
        text.split(whereSeparator: \.isWhitespace).count
    }

    private func usage(completion: Int) -> JSONValue {
        let prompt = promptTokens
        var usage: JSONObject = [
            "prompt_tokens": .int(Int64(prompt)), "completion_tokens": .int(Int64(completion)),
            "total_tokens": .int(Int64(prompt + completion)),
        ]
        if isConversation {
            usage["connector_tokens"] = nil as JSONValue
            usage["connectors"] = nil as JSONValue
        }
        return .object(usage)
    }

    // MARK: Shapes

    private func successReply(agentError: Bool) -> Reply {
        let calls = calls()
        let text = calls.isEmpty ? textChunks() : (chunks: [], finishReason: "tool_calls")
        let completionTokens =
            calls.isEmpty
            ? text.chunks.reduce(0) { $0 + Self.wordCount($1) }
            : calls.reduce(0) { $0 + 1 + Self.wordCount($1.arguments) }
        let usage = usage(completion: completionTokens)
        if isConversation {
            return streaming
                ? streamReply(conversationEvents(text.chunks, calls, usage, agentError: agentError))
                : .json(200, conversationResponse(text.chunks.joined(), calls, usage))
        }
        return streaming
            ? streamReply(chatEvents(text.chunks, calls, text.finishReason, usage))
            : .json(200, chatResponse(text.chunks.joined(), calls, text.finishReason, usage))
    }

    private func streamReply(_ events: [[UInt8]]) -> Reply {
        var reply = Reply(status: 200, body: .events(events))
        reply.contentType = "text/event-stream"
        reply.headers = [(name: "Cache-Control", value: "no-cache")]
        return reply
    }

    private func chatToolCalls(_ calls: [Call]) -> JSONValue {
        .array(
            calls.enumerated().map { position, call in
                [
                    "id": .string(call.id), "type": "function",
                    "function": ["name": .string(call.name), "arguments": .string(call.arguments)],
                    "index": .int(Int64(position)),
                ]
            })
    }

    private func chatResponse(_ content: String, _ calls: [Call], _ finishReason: String, _ usage: JSONValue)
        -> JSONValue
    {
        let message: JSONValue = [
            "content": .string(content), "tool_calls": calls.isEmpty ? nil : chatToolCalls(calls),
            "prefix": false, "role": "assistant",
        ]
        return [
            "id": .string(hexID()), "object": "chat.completion", "model": .string(model), "usage": usage,
            "created": .int(created),
            "choices": [["index": 0, "message": message, "finish_reason": .string(finishReason)]],
        ]
    }

    /// Chat chunks share everything up to the delta: that part is written once per stream, not per word.
    private func chatEvents(_ chunks: [String], _ calls: [Call], _ finishReason: String, _ usage: JSONValue)
        -> [[UInt8]]
    {
        var head = Array(#"data: {"id":"#.utf8)
        JSONValue.string(hexID()).write(to: &head)
        head.append(contentsOf: #","object":"chat.completion.chunk","created":\#(created),"model":"#.utf8)
        JSONValue.string(model).write(to: &head)
        head.append(contentsOf: #","choices":[{"index":0,"delta":"#.utf8)
        func chunk(_ writeDelta: (inout [UInt8]) -> Void, finish: String?, usage: JSONValue? = nil) -> [UInt8] {
            var bytes = head
            writeDelta(&bytes)
            bytes.append(contentsOf: #","finish_reason":"#.utf8)
            (finish.map(JSONValue.string) ?? .null).write(to: &bytes)
            bytes.append(contentsOf: "}]".utf8)
            if let usage {
                bytes.append(contentsOf: #","usage":"#.utf8)
                usage.write(to: &bytes)
            }
            bytes.append(contentsOf: "}\n\n".utf8)
            return bytes
        }
        var events = [chunk({ $0.append(contentsOf: #"{"role":"assistant","content":""}"#.utf8) }, finish: nil)]
        if !calls.isEmpty {
            let delta: JSONValue = ["tool_calls": chatToolCalls(calls)]
            events.append(chunk({ delta.write(to: &$0) }, finish: "tool_calls", usage: usage))
        } else {
            let pieces = chunks.isEmpty ? [""] : chunks
            for (position, piece) in pieces.enumerated() {
                let isLast = position == pieces.count - 1
                let content = { (bytes: inout [UInt8]) in
                    bytes.append(contentsOf: #"{"content":"#.utf8)
                    JSONValue.string(piece).write(to: &bytes)
                    bytes.append(UInt8(ascii: "}"))
                }
                events.append(
                    chunk(content, finish: isLast ? finishReason : nil, usage: isLast ? Optional(usage) : nil))
            }
        }
        events.append(SSE.done)
        return events
    }

    private var agentID: JSONValue { request["agent_id"] ?? nil }

    private func conversationResponse(_ content: String, _ calls: [Call], _ usage: JSONValue) -> JSONValue {
        let now = JSONValue.string(Self.isoTimestamp(created))
        let outputs: [JSONValue] =
            calls.isEmpty
            ? [
                [
                    "object": "entry", "type": "message.output", "created_at": now, "completed_at": now,
                    "agent_id": agentID,
                    "model": .string(model), "id": .string("msg_" + hexID(salt: 2 << 32)), "role": "assistant",
                    "content": .string(content),
                ]
            ]
            : calls.enumerated().map { position, call in
                [
                    "object": "entry", "type": "function.call", "created_at": now, "completed_at": now,
                    "agent_id": agentID,
                    "model": .string(model), "id": .string("fc_" + hexID(salt: 3 << 32 + UInt64(position))),
                    "tool_call_id": .string(call.id),
                    "name": .string(call.name), "arguments": .string(call.arguments),
                ]
            }
        return [
            "object": "conversation.response", "conversation_id": .string("conv_" + hexID(salt: 1 << 32)),
            "outputs": .array(outputs), "usage": usage,
        ]
    }

    private func conversationEvents(_ chunks: [String], _ calls: [Call], _ usage: JSONValue, agentError: Bool)
        -> [[UInt8]]
    {
        var events = [
            SSE.event(
                "conversation.response.started",
                ["type": "conversation.response.started", "conversation_id": .string("conv_" + hexID(salt: 1 << 32))])
        ]
        if calls.isEmpty {
            // Everything before `content` is the same for every delta: written once.
            let template = SSE.event(
                "message.output.delta",
                [
                    "type": "message.output.delta", "output_index": 0, "id": .string("msg_" + hexID(salt: 2 << 32)),
                    "content_index": 0,
                    "model": .string(model), "agent_id": agentID, "role": "assistant", "content": "",
                ])
            let head = template.dropLast(#"""}"#.utf8.count + 2)  // the empty content, the brace and the blank line
            for piece in chunks.isEmpty ? [""] : chunks {
                var bytes = Array(head)
                JSONValue.string(piece).write(to: &bytes)
                bytes.append(contentsOf: "}\n\n".utf8)
                events.append(bytes)
            }
        } else {
            for (position, call) in calls.enumerated() {
                events.append(
                    SSE.event(
                        "function.call.delta",
                        [
                            "type": "function.call.delta", "output_index": .int(Int64(position)),
                            "id": .string("fc_" + hexID(salt: 3 << 32 + UInt64(position))),
                            "model": .string(model), "agent_id": agentID, "name": .string(call.name),
                            "tool_call_id": .string(call.id),
                            "arguments": .string(call.arguments),
                        ]))
            }
        }
        if agentError {
            events = Array(events.prefix(2))
            events.append(
                SSE.event(
                    "conversation.response.error",
                    ["type": "conversation.response.error", "message": "Emulated agent error", "code": 3000]))
            return events
        }
        events.append(SSE.event("conversation.response.done", ["type": "conversation.response.done", "usage": usage]))
        return events
    }

    /// The third event's data (or the body's second half) replaced by text that is not JSON: the
    /// first text of the reply comes before it, as when a stream breaks in mid-reply.
    private func malformed(_ body: Reply.Body) -> Reply.Body {
        switch body {
        case .bytes(let bytes):
            return .bytes(Array(bytes.prefix(bytes.count / 2)))
        case .events(var events):
            guard events.count > 1 else { return body }
            let broken =
                isConversation
                ? "event: message.output.delta\ndata: {\"type\": malformed\n\n" : "data: {\"id\": malformed\n\n"
            events[min(2, events.count - 1)] = Array(broken.utf8)
            return .events(events)
        }
    }

    // MARK: Identifiers

    private static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// 32 lowercase hex digits, distinct per request (and per `salt` within one).
    private func hexID(salt: UInt64 = 0) -> String {
        let high = Self.mix(serial &* 1_000_003 &+ salt)
        let low = Self.mix(high ^ serial)
        func hex(_ value: UInt64) -> String {
            let digits = String(value, radix: 16)
            return String(repeating: "0", count: 16 - digits.count) + digits
        }
        return hex(high) + hex(low)
    }

    /// Nine characters of `[a-zA-Z0-9]`, Mistral's tool-call id form.
    private func toolCallID(_ position: Int) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        var value = Self.mix(serial << 8 | UInt64(position & 0xFF))
        var id = ""
        for _ in 0..<9 {
            id.append(alphabet[Int(value % 62)])
            value /= 62
        }
        return id
    }

    static func isoTimestamp(_ seconds: Int64) -> String {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))Z"
    }
}
