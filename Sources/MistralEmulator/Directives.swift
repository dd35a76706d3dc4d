import JSON

/// What a client asked the emulator to do, written as `[kind:argument]` in the last user message.
///
/// The directives, each removed from the text the reply echoes:
/// - `[fault:KIND]`, `[fault:KIND*N]`: a fault, for only the first N requests with the same text
///   when `*N` is given. KIND is a status: `429` (`Retry-After: 1`), `429:retry=S` (S seconds),
///   `400`, `500`, `502`, `503`, `504`; `reset` (a TCP reset after the first content chunk),
///   `stall` (silence after it), `stall-head` (no response head), `stall-after-head` (the head,
///   then silence), `slow` (100 ms between events), `malformed` (the third event is not JSON)
///   or `agent-error` (a conversation stream ends in `conversation.response.error`; a 500
///   elsewhere).
/// - `[delay:MS]`: the response head waits MS milliseconds (repeats add up).
/// - `[pace:MS]`: a stream's events are written MS milliseconds apart, each in a write of its own,
///   like a model generating tokens (20 ms is 50 tokens/s).
/// - `[words:N]`: the answer is N words of lorem ipsum instead of the echo.
/// - `[tool:NAME]`: the model calls NAME, with arguments made from the tool's schema (for one
///   turn, or as `[steps:N]` says); the answer to its result is `Tool result: <the last result's
///   words>`.
/// - `[call:NAME]`, `[call:NAME:{JSON}]`: the model calls NAME with these arguments (`{}` when
///   none). The JSON is an object that runs to its matching closing brace, so it may hold spaces,
///   brackets and braces inside strings; `]` must follow it at once. Several `[call:…]` are
///   parallel calls of one turn. The answer after the calls is `Tool results: NAME=RESULT; …`
///   with every result since the last user message, verbatim.
/// - `[steps:N]`: the model makes its calls for N turns (default 1): while the history ends with
///   tool results and fewer than N assistant turns with calls follow the last user message, it
///   calls the same tools again. `[tool:…]` and `[call:…]` call only tools the request offers
///   (any name in a conversation that offers none).
/// - `[reasoning:N]`: the model thinks N words (`Thinking: …`) before it answers, as it does
///   without the directive when the request sets `reasoning_effort` (not `none`) or
///   `prompt_mode: "reasoning"`.
/// - `[cite:N]`: N `tool_reference` chunks between the answer's text pieces (every endpoint).
/// - `[builtin:NAME]` (conversations; repeatable): the agent runs a built-in tool first —
///   `web_search`, `web_search_premium` and `document_library` cite what they found (two
///   references unless `[cite:N]` says otherwise), `code_interpreter` reports `code_output`,
///   `image_generation` adds a `tool_file` chunk.
/// - `[handoff:NAME]` (conversations): the agent hands the conversation to agent NAME, which answers.
/// - `[unknown-event]` (conversation streams): an event of a type no client knows
///   (`conversation.future.thing`), after `conversation.response.started`.
struct Directives: Sendable, Equatable {
    enum Fault: Sendable, Equatable {
        /// An error status; `retryAfter` only for 429.
        case status(Int, retryAfter: Int?)
        case reset, stall, stallHead, stallAfterHead, slow, malformed, agentError
    }

    struct CountedFault: Sendable, Equatable {
        var fault: Fault
        /// `[fault:KIND*N]`: only the first N requests with the same text get it.
        var limit: Int?
    }

    /// A function call the model makes when the history calls for one.
    struct PlannedCall: Sendable, Equatable {
        var name: String
        /// `[call:…]`'s arguments; nil for `[tool:NAME]`, whose arguments come from the tool's schema.
        var arguments: JSONValue?
    }

    /// Mistral's built-in connectors (`BuiltInConnectors`).
    enum Builtin: String, Sendable, Equatable {
        case webSearch = "web_search"
        case webSearchPremium = "web_search_premium"
        case codeInterpreter = "code_interpreter"
        case imageGeneration = "image_generation"
        case documentLibrary = "document_library"
    }

    var faults: [CountedFault] = []
    var calls: [PlannedCall] = []
    var steps = 1
    var delayMilliseconds = 0
    var paceMilliseconds: Int?
    var words: Int?
    var thinkingWords: Int?
    var citations: Int?
    var builtins: [Builtin] = []
    var handoff: String?
    var unknownEvent = false
    /// The text's words with every directive removed.
    var remainingWords: [Substring] = []

    /// `[call:…]` asks for every result verbatim; `[tool:…]` alone keeps its one-line answer.
    var reportsEveryResult: Bool { calls.contains { $0.arguments != nil } }

    init() {}

    init(parsing text: String) {
        var remaining = ""
        var rest = text[...]
        while let open = rest.firstIndex(of: "[") {
            remaining += rest[..<open]
            if let end = apply(rest[open...]) {
                rest = rest[end...]
            } else {
                remaining.append("[")
                rest = rest[rest.index(after: open)...]
            }
        }
        remaining += rest
        remainingWords = remaining.split(whereSeparator: \.isWhitespace).map { Substring($0) }
    }

    /// Records the directive `text` starts with; the index after its `]`, or nil when there is none.
    private mutating func apply(_ text: Substring) -> Substring.Index? {
        let callPrefix = "[call:"
        if text.hasPrefix(callPrefix) { return applyCall(text.dropFirst(callPrefix.count)) }
        guard let close = text.firstIndex(of: "]") else { return nil }
        let body = text[text.index(after: text.startIndex)..<close]
        guard apply(body) else { return nil }
        return text.index(after: close)
    }

    private mutating func apply(_ body: Substring) -> Bool {
        if body == "unknown-event" {
            unknownEvent = true
            return true
        }
        guard let colon = body.firstIndex(of: ":") else { return false }
        let kind = body[..<colon]
        let argument = body[body.index(after: colon)...]
        let count = Int(argument).flatMap { $0 >= 0 ? $0 : nil }
        switch kind {
        case "fault":
            guard let fault = Self.parseFault(argument) else { return false }
            faults.append(fault)
        case "tool":
            guard !argument.isEmpty else { return false }
            calls.append(PlannedCall(name: String(argument), arguments: nil))
        case "delay":
            guard let count else { return false }
            delayMilliseconds += count
        case "pace":
            guard let count, count >= 1 else { return false }
            paceMilliseconds = count
        case "words":
            guard let count else { return false }
            words = count
        case "steps":
            guard let count, count >= 1 else { return false }
            steps = count
        case "reasoning":
            guard let count, count >= 1 else { return false }
            thinkingWords = count
        case "cite":
            guard let count else { return false }
            citations = count
        case "builtin":
            guard let builtin = Builtin(rawValue: String(argument)) else { return false }
            builtins.append(builtin)
        case "handoff":
            guard !argument.isEmpty else { return false }
            handoff = String(argument)
        default: return false
        }
        return true
    }

    /// `NAME]` or `NAME:{JSON}]`, after `[call:`.
    private mutating func applyCall(_ text: Substring) -> Substring.Index? {
        guard let end = text.firstIndex(where: { $0 == ":" || $0 == "]" }), end > text.startIndex else { return nil }
        let name = String(text[..<end])
        if text[end] == "]" {
            calls.append(PlannedCall(name: name, arguments: [:]))
            return text.index(after: end)
        }
        let json = text[text.index(after: end)...]
        guard let objectEnd = Self.endOfObject(json), objectEnd < json.endIndex, json[objectEnd] == "]",
            case .object(let arguments)? = try? JSONParser.parse(String(json[..<objectEnd]))
        else { return nil }
        calls.append(PlannedCall(name: name, arguments: .object(arguments)))
        return json.index(after: objectEnd)
    }

    /// The index after the `}` that closes the object `text` starts with, skipping braces in strings.
    static func endOfObject(_ text: Substring) -> Substring.Index? {
        guard text.first == "{" else { return nil }
        var depth = 0
        var inString = false
        var escaped = false
        for index in text.utf8.indices {
            let byte = text.utf8[index]
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"): depth += 1
            case UInt8(ascii: "}"):
                depth -= 1
                if depth == 0 { return text.utf8.index(after: index) }
            default: break
            }
        }
        return nil
    }

    private static func parseFault(_ argument: Substring) -> CountedFault? {
        var kind = argument
        var limit: Int?
        if let star = argument.lastIndex(of: "*") {
            guard let count = Int(argument[argument.index(after: star)...]), count >= 0 else { return nil }
            limit = count
            kind = argument[..<star]
        }
        let fault: Fault
        switch kind {
        case "429": fault = .status(429, retryAfter: 1)
        case "400", "500", "502", "503", "504": fault = .status(Int(kind)!, retryAfter: nil)
        case "reset": fault = .reset
        case "stall": fault = .stall
        case "stall-head": fault = .stallHead
        case "stall-after-head": fault = .stallAfterHead
        case "slow": fault = .slow
        case "malformed": fault = .malformed
        case "agent-error": fault = .agentError
        default:
            let prefix = "429:retry="
            guard kind.hasPrefix(prefix), let seconds = Int(kind.dropFirst(prefix.count)), seconds >= 0 else {
                return nil
            }
            fault = .status(429, retryAfter: seconds)
        }
        return CountedFault(fault: fault, limit: limit)
    }

    var hasCountedFault: Bool { faults.contains { $0.limit != nil } }

    /// The faults in force for the `occurrence`-th request (1-based) carrying the same text.
    func activeFaults(occurrence: Int) -> [Fault] {
        faults.filter { $0.limit.map { occurrence <= $0 } ?? true }.map(\.fault)
    }
}
