import JSON

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Builds the reply to one valid request: the deterministic content, in the endpoint's shape,
/// with the request's faults applied.
///
/// Which request fields shape the reply (the directives are in `Directives`):
/// - `reasoning_effort` other than `none` (top level in chat and agents completions, in
///   `completion_args` for conversations) or `prompt_mode: "reasoning"`: the reply thinks first
///   (`thinking` chunks, see `Part`).
/// - `prompt_cache_key` (chat and agents completions): `usage.prompt_tokens_details.cached_tokens`.
/// - `tools`: which functions `[tool:…]` and `[call:…]` may call.
/// - `max_tokens` (`completion_args.max_tokens`): cuts the answer, `finish_reason: "length"`.
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

    /// One piece of a reply's content, in the order the model produces it; a stream sends about
    /// one per delta.
    enum Part {
        /// A piece of the model's thinking, which comes before everything else.
        case thinking(String)
        case text(String)
        /// A `tool_reference` or `tool_file` chunk, between text pieces.
        case chunk(JSONValue)
    }

    /// A built-in tool the agent runs before it answers (conversations only).
    struct Execution {
        var id: String
        var builtin: Directives.Builtin
        var arguments: String
        var info: JSONValue
    }

    struct Handoff {
        var id: String
        var previousAgentID: String
        var nextAgentID: String
        var nextAgentName: String
    }

    /// Everything one model turn produces, before it is shaped for the endpoint.
    struct Answer {
        var handoff: Handoff?
        var executions: [Execution] = []
        var content: [Part] = []
        var calls: [Call] = []
        var finishReason: String
        var usage: JSONValue
        var totalTokens: Int
    }

    /// Words cycled through for `[words:N]`.
    static let vocabulary = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit"]
    /// Words cycled through after `Thinking:`; their count unless `[reasoning:N]` sets it.
    static let thinkingVocabulary = ["weigh", "what", "the", "user", "asked"]
    /// The name the agent a conversation starts with has in handoff events.
    static let agentName = "emulated-agent"

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
        if let pace = directives.paceMilliseconds { reply.chunkIntervalMilliseconds = pace }
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
                reply.headers += Self.rateLimitHeaders(cost: promptTokens, exhausted: true)
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

    static let tokensPerMinute = 2_000_000
    static let requestsPerMinute = 1_000

    /// Mistral's rate-limit headers (client-ts#169). Every request finds a fresh minute's budget
    /// and spends `cost` tokens of it; a 429 finds both budgets spent.
    static func rateLimitHeaders(cost: Int, exhausted: Bool) -> [(name: String, value: String)] {
        [
            ("x-ratelimit-limit-tokens-minute", String(tokensPerMinute)),
            ("x-ratelimit-remaining-tokens-minute", String(exhausted ? 0 : tokensPerMinute - cost)),
            ("x-ratelimit-tokens-query-cost", String(cost)),
            ("x-ratelimit-limit-req-minute", String(requestsPerMinute)),
            ("x-ratelimit-remaining-req-minute", String(exhausted ? 0 : requestsPerMinute - 1)),
        ].map { (name: $0.0, value: $0.1) }
    }

    // MARK: Content

    private var lastTurn: Turn? { turns.last }

    /// The turns after the last user message: the model's calls and their results so far.
    private var sinceLastUser: ArraySlice<Turn> {
        turns.lastIndex { $0.role == .user }.map { turns[($0 + 1)...] } ?? turns[...]
    }

    /// The answer's text in pieces: one word (or one whole tool result) and its following space
    /// per piece.
    private func textPieces() -> (pieces: [String], finishReason: String) {
        var words: [String]
        if lastTurn?.role == .tool, directives.reportsEveryResult {
            let results = toolResults()
            words = ["Tool", "results:"] + results.dropLast().map { $0 + ";" } + results.suffix(1)
        } else if lastTurn?.role == .tool {
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
        return (Self.spaced(words), finishReason)
    }

    /// `NAME=RESULT` for every tool result since the last user message, the result verbatim; the
    /// name from the result itself or from the call it answers.
    private func toolResults() -> [String] {
        let recent = sinceLastUser
        var names: [String: String] = [:]
        for call in recent.flatMap({ $0.calls ?? [] }) { names[call.id] = call.name }
        return recent.filter { $0.role == .tool }.map { result in
            let name = result.name ?? result.toolCallID.flatMap { names[$0] } ?? "unknown"
            return "\(name)=\(result.text)"
        }
    }

    /// Each word followed by a space, but the last.
    private static func spaced(_ words: [String]) -> [String] {
        words.enumerated().map { $0.offset < words.count - 1 ? $0.element + " " : $0.element }
    }

    private var maxTokens: Int? {
        let value = isConversation ? request["completion_args"]?["max_tokens"] : request["max_tokens"]
        return value?.intValue.map { Int($0) }
    }

    /// `reasoning_effort` set and not `none`, `prompt_mode: "reasoning"` (not in conversations,
    /// whose `CompletionArgs` lack it), or `[reasoning:N]`.
    private var thinks: Bool {
        if directives.thinkingWords != nil { return true }
        let effort = isConversation ? request["completion_args"]?["reasoning_effort"] : request["reasoning_effort"]
        if let effort = effort?.stringValue, effort != "none" { return true }
        return !isConversation && request["prompt_mode"] == "reasoning"
    }

    private func thinkingPieces() -> [String] {
        let count = directives.thinkingWords ?? Self.thinkingVocabulary.count
        return Self.spaced(
            ["Thinking:"] + (0..<count).map { Self.thinkingVocabulary[$0 % Self.thinkingVocabulary.count] })
    }

    /// The calls of this turn: the directives' calls while the history asks for another calling
    /// turn (the last message is the user's, or tool results after fewer calling turns than
    /// `[steps:N]`), to tools the request offers (any name in a conversation that offers none).
    private func calls() -> [Call] {
        guard !directives.calls.isEmpty, let last = lastTurn else { return [] }
        let callingTurns = sinceLastUser.filter { !($0.calls ?? []).isEmpty }.count
        guard last.role == .user || (last.role == .tool && callingTurns < directives.steps) else { return [] }
        let tools = (request["tools"]?.arrayValue ?? []).filter {
            ($0["type"]?.stringValue ?? "function") == "function"
        }
        let anyName = isConversation && tools.isEmpty
        return directives.calls.enumerated().compactMap { position, planned in
            let tool = tools.first { $0["function"]?["name"]?.stringValue == planned.name }
            guard tool != nil || anyName else { return nil }
            let arguments = planned.arguments ?? Self.arguments(for: tool?["function"]?["parameters"])
            return Call(id: toolCallID(position), name: planned.name, arguments: arguments.jsonText)
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

    /// What the echo is about: the user's words, for search queries and image prompts.
    private var topic: String {
        directives.remainingWords.isEmpty ? "emulated topic" : directives.remainingWords.joined(separator: " ")
    }

    /// The runs of `[builtin:…]`'s tools, in a conversation.
    private func executions() -> [Execution] {
        guard isConversation else { return [] }
        return directives.builtins.enumerated().map { position, builtin in
            let arguments: JSONValue
            let info: JSONValue
            switch builtin {
            case .webSearch, .webSearchPremium, .documentLibrary:
                arguments = ["query": .string(topic)]
                info = ["query": .string(topic), "results": .int(Int64(citationCount))]
            case .codeInterpreter:
                arguments = ["code": "print(6 * 7)"]
                info = ["code": "print(6 * 7)", "code_output": "42\n"]
            case .imageGeneration:
                arguments = ["prompt": .string(topic)]
                info = [
                    "file_id": .string(generatedFileID(position)), "file_name": .string(generatedFileName(position)),
                ]
            }
            return Execution(
                id: "tool_exec_" + hexID(salt: 4 << 32 + UInt64(position)), builtin: builtin,
                arguments: arguments.jsonText, info: info)
        }
    }

    /// The built-in tools that find documents to cite.
    private var searches: [Directives.Builtin] {
        isConversation
            ? directives.builtins.filter { [.webSearch, .webSearchPremium, .documentLibrary].contains($0) } : []
    }

    /// `[cite:N]`, else two references per answer that searched.
    private var citationCount: Int { directives.citations ?? (searches.isEmpty ? 0 : 2) }

    /// The `tool_reference` and `tool_file` chunks the answer carries between its text pieces.
    private func attachments(_ executions: [Execution]) -> [JSONValue] {
        let tool = searches.first?.rawValue ?? Directives.Builtin.webSearch.rawValue
        let references: [JSONValue] = (0..<citationCount).map { position in
            let number = position + 1
            // Every other reference leaves the optional fields null, as search results without them do.
            let full = position % 2 == 0
            return [
                "type": "tool_reference", "tool": .string(tool), "title": .string("Result \(number)"),
                "url": .string("https://example.com/result-\(number)"),
                "favicon": full ? "https://example.com/favicon.ico" : nil,
                "description": full ? .string("Emulated result \(number) about \(topic)") : nil,
            ]
        }
        let files: [JSONValue] = executions.enumerated().compactMap { position, execution in
            guard execution.builtin == .imageGeneration else { return nil }
            return [
                "type": "tool_file", "tool": "image_generation", "file_id": .string(generatedFileID(position)),
                "file_name": .string(generatedFileName(position)), "file_type": "png",
            ]
        }
        return references + files
    }

    /// Attachment i after text piece i: the references sit inside the text, whose pieces still
    /// join to the same answer; those beyond the text follow it.
    private static func interleave(_ pieces: [String], _ attachments: [JSONValue]) -> [Part] {
        var parts: [Part] = []
        for position in 0..<max(pieces.count, attachments.count) {
            if position < pieces.count { parts.append(.text(pieces[position])) }
            if position < attachments.count { parts.append(.chunk(attachments[position])) }
        }
        return parts
    }

    /// `[handoff:NAME]` in a conversation: the agent asked (an invented one when the conversation
    /// names a model) hands over to a new agent called NAME.
    private func handoff() -> Handoff? {
        guard isConversation, let name = directives.handoff else { return nil }
        return Handoff(
            id: "handoff_" + hexID(salt: 5 << 32),
            previousAgentID: request["agent_id"]?.stringValue ?? "ag_" + hexID(salt: 6 << 32),
            nextAgentID: "ag_" + hexID(salt: 7 << 32), nextAgentName: name)
    }

    private func answer() -> Answer {
        let calls = calls()
        let executions = executions()
        var content = thinks ? thinkingPieces().map(Part.thinking) : []
        var finishReason = "tool_calls"
        if calls.isEmpty {
            let text = textPieces()
            finishReason = text.finishReason
            content += Self.interleave(text.pieces, attachments(executions))
        }
        let contentTokens = content.reduce(0) { total, part in
            switch part {
            case .thinking(let text), .text(let text): total + Self.wordCount(text)
            case .chunk: total + 1
            }
        }
        let completion = contentTokens + calls.reduce(0) { $0 + 1 + Self.wordCount($1.arguments) }
        let prompt = promptTokens
        return Answer(
            handoff: handoff(), executions: executions, content: content, calls: calls, finishReason: finishReason,
            usage: usage(prompt: prompt, completion: completion, executions: executions),
            totalTokens: prompt + completion)
    }

    private var promptTokens: Int {
        turns.reduce(0) { $0 + Self.wordCount($1.text) }
    }

    /// The number of whitespace-separated words: the emulator's token count.
    static func wordCount(_ text: String) -> Int {
        if case let words?? = text.utf8.withContiguousStorageIfAvailable(asciiWordCount) { return words }
        return text.split(whereSeparator: \.isWhitespace).count
    }

    /// Splitting by `Character` breaks graphemes and looks up Unicode properties per character,
    /// which made counting a long history the costliest part of a request. In ASCII text every
    /// byte is a character (CR LF is one, but both halves are whitespace), so bytes count the
    /// same; nil for text beyond ASCII.
    private static func asciiWordCount(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        var words = 0
        var inWord = false
        for byte in bytes {
            guard byte < 0x80 else { return nil }
            let isWhitespace = byte == UInt8(ascii: " ") || (0x09...0x0D).contains(byte)
            if !isWhitespace, !inWord { words += 1 }
            inWord = !isWhitespace
        }
        return words
    }

    /// Tokens each built-in tool run costs, in `connector_tokens`.
    static let connectorTokens = 25

    private func usage(prompt: Int, completion: Int, executions: [Execution]) -> JSONValue {
        var usage: JSONObject = [
            "prompt_tokens": .int(Int64(prompt)), "completion_tokens": .int(Int64(completion)),
            "total_tokens": .int(Int64(prompt + completion)),
        ]
        if isConversation {
            var connectors = JSONObject()
            for execution in executions {
                let spent = connectors[execution.builtin.rawValue]?.intValue ?? 0
                connectors[execution.builtin.rawValue] = .int(spent + Int64(Self.connectorTokens))
            }
            usage["connector_tokens"] =
                executions.isEmpty ? JSONValue.null : .int(Int64(executions.count * Self.connectorTokens))
            usage["connectors"] = executions.isEmpty ? JSONValue.null : .object(connectors)
        } else if request["prompt_cache_key"]?.stringValue != nil {
            // What a cache under that key holds from the previous turn: every message but the last.
            let cached = turns.dropLast().reduce(0) { $0 + Self.wordCount($1.text) }
            usage["prompt_tokens_details"] = ["cached_tokens": .int(Int64(cached))]
        }
        return .object(usage)
    }

    // MARK: Chunks

    /// `part` as Mistral's content chunk; `closed` only says whether a thinking chunk is finished.
    static func chunk(_ part: Part, closed: Bool) -> JSONValue {
        switch part {
        case .thinking(let text):
            ["type": "thinking", "thinking": [["type": "text", "text": .string(text)]], "closed": .bool(closed)]
        case .text(let text): ["type": "text", "text": .string(text)]
        case .chunk(let chunk): chunk
        }
    }

    private static func isThinking(_ part: Part?) -> Bool {
        if case .thinking? = part { true } else { false }
    }

    private static func isText(_ part: Part?) -> Bool {
        if case .text? = part { true } else { false }
    }

    /// A whole message's content: a string when it is only text, else Mistral's chunk list, each
    /// run of thinking or of text one chunk.
    static func wholeContent(_ parts: [Part]) -> JSONValue {
        var runs: [Part] = []
        for part in parts {
            switch (runs.last, part) {
            case (.thinking(let previous)?, .thinking(let text)): runs[runs.count - 1] = .thinking(previous + text)
            case (.text(let previous)?, .text(let text)): runs[runs.count - 1] = .text(previous + text)
            default: runs.append(part)
            }
        }
        switch runs.first {
        case nil: return ""
        case .text(let text)? where runs.count == 1: return .string(text)
        default: return .array(runs.map { chunk($0, closed: true) })
        }
    }

    /// Each delta's `content` in a chat stream, the three phases of a reasoning reply: lists of one
    /// open `thinking` chunk; one list that closes the thinking and opens the text (both chunks);
    /// then plain strings. A reference or file is a list of that one chunk.
    static func chatDeltas(_ parts: [Part]) -> [JSONValue] {
        var deltas: [JSONValue] = []
        var position = 0
        while position < parts.count {
            let part = parts[position]
            let next = position + 1 < parts.count ? parts[position + 1] : nil
            position += 1
            switch part {
            case .thinking where isText(next):
                deltas.append([chunk(part, closed: true), chunk(next!, closed: true)])
                position += 1
            case .thinking: deltas.append([chunk(part, closed: !isThinking(next))])
            case .text(let text): deltas.append(.string(text))
            case .chunk(let chunk): deltas.append([chunk])
            }
        }
        return deltas
    }

    /// Each `message.output.delta`'s `content` and `content_index` in a conversation stream: a
    /// string per text piece, one chunk per thinking piece, reference or file; the index moves on
    /// with each new chunk and where text starts again.
    static func conversationDeltas(_ parts: [Part]) -> [(content: JSONValue, index: Int)] {
        var index = 0
        return parts.enumerated().map { position, part in
            let previous = position > 0 ? parts[position - 1] : nil
            let continues = (isText(part) && isText(previous)) || (isThinking(part) && isThinking(previous))
            if previous != nil, !continues { index += 1 }
            let next = position + 1 < parts.count ? parts[position + 1] : nil
            switch part {
            case .text(let text): return (.string(text), index)
            default: return (chunk(part, closed: !isThinking(next)), index)
            }
        }
    }

    // MARK: Shapes

    private func successReply(agentError: Bool) -> Reply {
        let answer = answer()
        var reply =
            switch (isConversation, streaming) {
            case (true, true): streamReply(conversationEvents(answer, agentError: agentError))
            case (true, false): Reply.json(200, conversationResponse(answer))
            case (false, true): streamReply(chatEvents(answer))
            case (false, false): Reply.json(200, chatResponse(answer))
            }
        reply.headers += Self.rateLimitHeaders(cost: answer.totalTokens, exhausted: false)
        return reply
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

    private func chatResponse(_ answer: Answer) -> JSONValue {
        let message: JSONValue = [
            "content": Self.wholeContent(answer.content),
            "tool_calls": answer.calls.isEmpty ? nil : chatToolCalls(answer.calls), "prefix": false,
            "role": "assistant",
        ]
        return [
            "id": .string(hexID()), "object": "chat.completion", "model": .string(model), "usage": answer.usage,
            "created": .int(created),
            "choices": [["index": 0, "message": message, "finish_reason": .string(answer.finishReason)]],
        ]
    }

    /// Chat chunks share everything up to the delta: that part is written once per stream, not per word.
    /// The last chunk carries `finish_reason` and `usage`: the last content delta, or the whole
    /// tool calls after any thinking.
    private func chatEvents(_ answer: Answer) -> [[UInt8]] {
        var head = Array(#"data: {"id":"#.utf8)
        JSONValue.string(hexID()).write(to: &head)
        head.append(contentsOf: #","object":"chat.completion.chunk","created":\#(created),"model":"#.utf8)
        JSONValue.string(model).write(to: &head)
        head.append(contentsOf: #","choices":[{"index":0,"delta":"#.utf8)
        func chunk(isLast: Bool, _ writeDelta: (inout [UInt8]) -> Void) -> [UInt8] {
            var bytes = head
            writeDelta(&bytes)
            bytes.append(contentsOf: #","finish_reason":"#.utf8)
            (isLast ? JSONValue.string(answer.finishReason) : .null).write(to: &bytes)
            bytes.append(contentsOf: "}]".utf8)
            if isLast {
                bytes.append(contentsOf: #","usage":"#.utf8)
                answer.usage.write(to: &bytes)
            }
            bytes.append(contentsOf: "}\n\n".utf8)
            return bytes
        }
        var events = [chunk(isLast: false) { $0.append(contentsOf: #"{"role":"assistant","content":""}"#.utf8) }]
        var contents = Self.chatDeltas(answer.content)
        if answer.calls.isEmpty, contents.isEmpty { contents = [""] }
        for (position, content) in contents.enumerated() {
            let isLast = answer.calls.isEmpty && position == contents.count - 1
            events.append(
                chunk(isLast: isLast) { bytes in
                    bytes.append(contentsOf: #"{"content":"#.utf8)
                    content.write(to: &bytes)
                    bytes.append(UInt8(ascii: "}"))
                })
        }
        if !answer.calls.isEmpty {
            let delta: JSONValue = ["tool_calls": chatToolCalls(answer.calls)]
            events.append(chunk(isLast: true) { delta.write(to: &$0) })
        }
        events.append(SSE.done)
        return events
    }

    private var conversationID: JSONValue { .string("conv_" + hexID(salt: 1 << 32)) }
    private var messageID: JSONValue { .string("msg_" + hexID(salt: 2 << 32)) }

    /// The agent that answers: the one handed to, else the one asked.
    private func answeringAgent(_ answer: Answer) -> JSONValue {
        answer.handoff.map { .string($0.nextAgentID) } ?? request["agent_id"] ?? nil
    }

    private func functionCallID(_ position: Int) -> JSONValue {
        .string("fc_" + hexID(salt: 3 << 32 + UInt64(position)))
    }

    /// `outputs` in the order the stream sends them: the handoff, the built-in tools, the message
    /// (when there is text or thinking, or nothing else), the function calls.
    private func conversationResponse(_ answer: Answer) -> JSONValue {
        let now = JSONValue.string(Self.isoTimestamp(created))
        let agent = answeringAgent(answer)
        var outputs: [JSONValue] = []
        if let handoff = answer.handoff {
            outputs.append([
                "object": "entry", "type": "agent.handoff", "created_at": now, "completed_at": now,
                "id": .string(handoff.id), "previous_agent_id": .string(handoff.previousAgentID),
                "previous_agent_name": .string(Self.agentName), "next_agent_id": .string(handoff.nextAgentID),
                "next_agent_name": .string(handoff.nextAgentName),
            ])
        }
        for execution in answer.executions {
            outputs.append([
                "object": "entry", "type": "tool.execution", "created_at": now, "completed_at": now, "agent_id": agent,
                "model": .string(model), "id": .string(execution.id), "name": .string(execution.builtin.rawValue),
                "arguments": .string(execution.arguments), "info": execution.info,
            ])
        }
        if answer.calls.isEmpty || !answer.content.isEmpty {
            outputs.append([
                "object": "entry", "type": "message.output", "created_at": now, "completed_at": now, "agent_id": agent,
                "model": .string(model), "id": messageID, "role": "assistant",
                "content": Self.wholeContent(answer.content),
            ])
        }
        for (position, call) in answer.calls.enumerated() {
            outputs.append([
                "object": "entry", "type": "function.call", "created_at": now, "completed_at": now, "agent_id": agent,
                "model": .string(model), "id": functionCallID(position), "tool_call_id": .string(call.id),
                "name": .string(call.name), "arguments": .string(call.arguments),
            ])
        }
        return [
            "object": "conversation.response", "conversation_id": conversationID, "outputs": .array(outputs),
            "usage": answer.usage,
        ]
    }

    /// The events of a conversation stream, each output under its own `output_index`.
    private func conversationEvents(_ answer: Answer, agentError: Bool) -> [[UInt8]] {
        func event(_ type: String, _ fields: JSONObject) -> [UInt8] {
            var data: JSONObject = ["type": .string(type)]
            for member in fields { data[member.key] = member.value }
            return SSE.event(type, .object(data))
        }
        let agent = answeringAgent(answer)
        var events = [event("conversation.response.started", ["conversation_id": conversationID])]
        if directives.unknownEvent {
            events.append(event("conversation.future.thing", ["note": "an event type no client knows yet"]))
        }
        var outputIndex: Int64 = 0
        if let handoff = answer.handoff {
            events.append(
                event(
                    "agent.handoff.started",
                    [
                        "output_index": .int(outputIndex), "id": .string(handoff.id),
                        "previous_agent_id": .string(handoff.previousAgentID),
                        "previous_agent_name": .string(Self.agentName),
                    ]))
            events.append(
                event(
                    "agent.handoff.done",
                    [
                        "output_index": .int(outputIndex), "id": .string(handoff.id),
                        "next_agent_id": .string(handoff.nextAgentID),
                        "next_agent_name": .string(handoff.nextAgentName),
                    ]))
            outputIndex += 1
        }
        for execution in answer.executions {
            let name = JSONValue.string(execution.builtin.rawValue)
            let id = JSONValue.string(execution.id)
            events.append(
                event(
                    "tool.execution.started",
                    [
                        "output_index": .int(outputIndex), "id": id, "model": .string(model), "agent_id": agent,
                        "name": name, "arguments": "",
                    ]))
            // The arguments arrive in two pieces, as streamed arguments do.
            let middle = execution.arguments.index(
                execution.arguments.startIndex, offsetBy: execution.arguments.count / 2)
            for piece in [execution.arguments[..<middle], execution.arguments[middle...]] {
                events.append(
                    event(
                        "tool.execution.delta",
                        [
                            "output_index": .int(outputIndex), "id": id, "name": name,
                            "arguments": .string(String(piece)),
                        ]))
            }
            events.append(
                event(
                    "tool.execution.done",
                    ["output_index": .int(outputIndex), "id": id, "name": name, "info": execution.info]))
            outputIndex += 1
        }
        if answer.calls.isEmpty || !answer.content.isEmpty {
            // Everything before `content_index` is the same for every delta: written once.
            let template = event(
                "message.output.delta",
                [
                    "output_index": .int(outputIndex), "id": messageID, "model": .string(model), "agent_id": agent,
                    "role": "assistant",
                ])
            let head = template.dropLast("}\n\n".utf8.count)
            let deltas = Self.conversationDeltas(answer.content)
            for delta in deltas.isEmpty ? [(content: "", index: 0)] : deltas {
                var bytes = Array(head)
                bytes.append(contentsOf: #","content_index":\#(delta.index),"content":"#.utf8)
                delta.content.write(to: &bytes)
                bytes.append(contentsOf: "}\n\n".utf8)
                events.append(bytes)
            }
            outputIndex += 1
        }
        for (position, call) in answer.calls.enumerated() {
            events.append(
                event(
                    "function.call.delta",
                    [
                        "output_index": .int(outputIndex), "id": functionCallID(position), "model": .string(model),
                        "agent_id": agent, "name": .string(call.name), "tool_call_id": .string(call.id),
                        "arguments": .string(call.arguments),
                    ]))
            outputIndex += 1
        }
        if agentError {
            events = Array(events.prefix(2))
            events.append(
                event("conversation.response.error", ["message": "Emulated agent error", "code": 3000]))
            return events
        }
        events.append(event("conversation.response.done", ["usage": answer.usage]))
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

    /// A generated file's id: a UUID, as Mistral's file ids are.
    private func generatedFileID(_ position: Int) -> String {
        let hex = Array(hexID(salt: 8 << 32 + UInt64(position)))
        return [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(hex[$0]) }.joined(separator: "-")
    }

    private func generatedFileName(_ position: Int) -> String { "image_generated_\(position).png" }

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
