/// What a client asked the emulator to do, written as `[kind:argument]` in the last user message.
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

    var faults: [CountedFault] = []
    var tools: [String] = []
    var delayMilliseconds = 0
    var words: Int?
    /// The text's words with every directive removed.
    var remainingWords: [Substring] = []

    init() {}

    init(parsing text: String) {
        var remaining = ""
        var rest = text[...]
        while let open = rest.firstIndex(of: "[") {
            remaining += rest[..<open]
            guard let close = rest[open...].firstIndex(of: "]") else {
                rest = rest[open...]
                break
            }
            let body = rest[rest.index(after: open)..<close]
            if !apply(body) { remaining += rest[open...close] }
            rest = rest[rest.index(after: close)...]
        }
        remaining += rest
        remainingWords = remaining.split(whereSeparator: \.isWhitespace).map { Substring($0) }
    }

    /// Records the directive `kind:argument`; false when the text is not one.
    private mutating func apply(_ body: Substring) -> Bool {
        guard let colon = body.firstIndex(of: ":") else { return false }
        let kind = body[..<colon]
        let argument = body[body.index(after: colon)...]
        switch kind {
        case "fault":
            guard let fault = Self.parseFault(argument) else { return false }
            faults.append(fault)
        case "tool":
            guard !argument.isEmpty else { return false }
            tools.append(String(argument))
        case "delay":
            guard let milliseconds = Int(argument), milliseconds >= 0 else { return false }
            delayMilliseconds += milliseconds
        case "words":
            guard let count = Int(argument), count >= 0 else { return false }
            words = count
        default: return false
        }
        return true
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
