import JSON

/// One message of a conversation, reduced to what mistral-common's validator looks at.
/// Chat messages map one to one; conversation entries map to the message they stand for.
struct Turn: Sendable {
    enum Role: String, Sendable { case system, user, assistant, tool }

    struct Call: Sendable {
        /// `"null"` when the client sent none: mistral-common's default.
        var id: String
        var name: String
    }

    var role: Role
    var text: String
    var prefix = false
    var calls: [Call]?
    var toolCallID: String?
    var name: String?
}

extension Turn {
    /// A schema-valid chat `messages` array as turns.
    static func fromChat(_ messages: [JSONValue]) -> [Turn] {
        messages.map { message in
            let role = Role(rawValue: message["role"]?.stringValue ?? "") ?? .user
            var turn = Turn(role: role, text: contentText(message["content"]))
            turn.prefix = message["prefix"]?.boolValue ?? false
            turn.calls = message["tool_calls"]?.arrayValue?.map { call in
                Call(id: call["id"]?.stringValue ?? "null", name: call["function"]?["name"]?.stringValue ?? "")
            }
            turn.toolCallID = message["tool_call_id"]?.stringValue
            turn.name = message["name"]?.stringValue
            return turn
        }
    }

    /// A schema-valid conversation `inputs` value as turns. Consecutive function calls, and a
    /// message output followed by function calls, form one assistant turn, as the calls of one
    /// model reply; server-side tool executions and handoffs are not part of the message history.
    static func fromConversation(_ inputs: JSONValue) -> [Turn] {
        if case .string(let text) = inputs { return [Turn(role: .user, text: text)] }
        var turns: [Turn] = []
        for entry in inputs.arrayValue ?? [] {
            switch entry["type"]?.stringValue ?? inferredType(entry) {
            case "message.input":
                var turn = Turn(
                    role: entry["role"]?.stringValue == "assistant" ? .assistant : .user,
                    text: contentText(entry["content"]))
                turn.prefix = entry["prefix"]?.boolValue ?? false
                turns.append(turn)
            case "message.output":
                turns.append(Turn(role: .assistant, text: contentText(entry["content"])))
            case "function.call":
                let call = Call(
                    id: entry["tool_call_id"]?.stringValue ?? "null", name: entry["name"]?.stringValue ?? "")
                if let last = turns.indices.last, turns[last].role == .assistant {
                    turns[last].calls = (turns[last].calls ?? []) + [call]
                } else {
                    turns.append(Turn(role: .assistant, text: "", calls: [call]))
                }
            case "function.result":
                var turn = Turn(role: .tool, text: entry["result"]?.stringValue ?? "")
                turn.toolCallID = entry["tool_call_id"]?.stringValue
                turns.append(turn)
            default: break
            }
        }
        return turns
    }

    /// The entry type an untyped entry matched in the schema's union.
    private static func inferredType(_ entry: JSONValue) -> String {
        if entry["role"] != nil { return "message.input" }
        if entry["result"] != nil { return "function.result" }
        if entry["tool_call_id"] != nil { return "function.call" }
        return ""
    }

    /// The text of a message content: the string, or its text chunks joined by spaces.
    static func contentText(_ content: JSONValue?) -> String {
        switch content {
        case .string(let text)?: return text
        case .array(let chunks)?: return chunks.compactMap { $0["text"]?.stringValue }.joined(separator: " ")
        default: return ""
        }
    }
}

/// A history mistral-common refuses, with its message.
struct HistoryViolation: Error, Sendable, Equatable {
    var message: String
    /// Role-order errors carry Mistral's `invalid_request_message_order` type and code 3230.
    var isMessageOrder = false
}

/// mistral-common's serving-mode validator (MistralRequestValidatorV13), message for message.
struct HistoryRules: Sendable {
    var strictToolAfterUser: Bool

    func check(_ turns: [Turn]) throws(HistoryViolation) {
        try checkStructure(turns)
        for (position, turn) in turns.enumerated() {
            try checkContent(turn, isLast: position == turns.count - 1)
        }
    }

    private func checkStructure(_ turns: [Turn]) throws(HistoryViolation) {
        guard let last = turns.last else {
            throw HistoryViolation(message: "Conversation must have at least one message")
        }
        if turns.count == 1, last.role != .user, last.role != .system {
            throw HistoryViolation(message: "Conversation must start with a user message or system message")
        }
        if turns.count > 1, last.role != .user, last.role != .tool, !(last.role == .assistant && last.prefix) {
            throw HistoryViolation(
                message:
                    "Expected last role User or Tool (or Assistant with prefix True) for serving but got \(last.role.rawValue)"
            )
        }
        for (previous, current) in zip(turns, turns.dropFirst()) where !allowed(current.role, after: previous.role) {
            throw HistoryViolation(
                message: "Unexpected role '\(current.role.rawValue)' after role '\(previous.role.rawValue)'",
                isMessageOrder: true)
        }
        try checkCallsAnswered(turns)
    }

    /// mistral-common also lets `system` follow `user`; the hosted API refuses any system message
    /// after the initial block (pipecat#4625), so the emulator does too.
    private func allowed(_ role: Turn.Role, after previous: Turn.Role) -> Bool {
        switch (previous, role) {
        case (_, .system): previous == .system
        case (.system, _): role != .tool
        case (.user, _): role == .assistant || role == .user
        case (.assistant, _): true
        case (.tool, .user): !strictToolAfterUser
        case (.tool, _): role == .assistant || role == .tool
        }
    }

    private func checkCallsAnswered(_ turns: [Turn]) throws(HistoryViolation) {
        var expected: Set<String> = []
        var observed: Set<String> = []
        for turn in turns.dropFirst() {
            switch turn.role {
            case .tool:
                let id = turn.toolCallID ?? "None"
                if observed.contains(id) {
                    throw HistoryViolation(message: "Duplicate tool call id \(id) in tool results")
                }
                if !expected.contains(id) {
                    throw HistoryViolation(message: "Unexpected tool call id \(id) in tool results")
                }
                observed.insert(id)
            case .assistant:
                if expected.count != observed.count {
                    throw HistoryViolation(message: "Not the same number of function calls and responses")
                }
                expected.removeAll()
                observed.removeAll()
                for call in turn.calls ?? [] {
                    if !expected.insert(call.id).inserted {
                        throw HistoryViolation(message: "Duplicate tool call id \(call.id) in assistant message")
                    }
                }
            case .user, .system: break
            }
        }
        if expected.count != observed.count {
            throw HistoryViolation(message: "Not the same number of function calls and responses")
        }
    }

    private func checkContent(_ turn: Turn, isLast: Bool) throws(HistoryViolation) {
        switch turn.role {
        case .assistant:
            for call in turn.calls ?? [] {
                if call.id != "null", !Self.isToolCallID(call.id) { throw Self.badID(call.id) }
                if call.id == "null" {
                    throw HistoryViolation(message: "Tool call id has to be defined in serving mode.")
                }
                try Self.checkFunctionName(call.name)
            }
            if turn.prefix, !isLast {
                throw HistoryViolation(message: "Assistant message with prefix True must be last message")
            }
        case .tool:
            if let name = turn.name { try Self.checkFunctionName(name) }
            guard let id = turn.toolCallID else { throw HistoryViolation(message: "Tool call id has to be defined.") }
            if !Self.isToolCallID(id) { throw Self.badID(id) }
        case .user, .system: break
        }
    }

    static func checkFunctionName(_ name: String) throws(HistoryViolation) {
        let valid =
            (1...64).contains(name.utf8.count)
            && name.utf8.allSatisfy { $0.isAlphanumericASCII || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
        guard valid else {
            throw HistoryViolation(
                message:
                    "Function name was \(name) but must be a-z, A-Z, 0-9, or contain underscores and dashes, with a maximum length of 64."
            )
        }
    }

    /// Mistral's tool-call ids: exactly nine ASCII letters or digits.
    static func isToolCallID(_ id: String) -> Bool {
        id.utf8.count == 9 && id.utf8.allSatisfy(\.isAlphanumericASCII)
    }

    private static func badID(_ id: String) -> HistoryViolation {
        HistoryViolation(message: "Tool call id was \(id) but must be a-z, A-Z, 0-9, with a length of 9.")
    }
}

extension UInt8 {
    var isAlphanumericASCII: Bool {
        (self >= UInt8(ascii: "a") && self <= UInt8(ascii: "z"))
            || (self >= UInt8(ascii: "A") && self <= UInt8(ascii: "Z"))
            || (self >= UInt8(ascii: "0") && self <= UInt8(ascii: "9"))
    }
}
