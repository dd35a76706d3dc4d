import AgentProtocol
import JSON

@testable import LLM

func user(_ text: String, name: String? = nil) -> ChatMessage { ChatMessage(role: .user, content: text, name: name) }
func system(_ text: String) -> ChatMessage { ChatMessage(role: .system, content: text) }
func assistant(_ text: String?, calls: [String] = [], prefix: Bool = false) -> ChatMessage {
    ChatMessage(
        role: .assistant, content: text,
        toolCalls: calls.map { ToolCall(id: $0, name: "lookup", arguments: ["q": "x"]) }, prefix: prefix
    )
}
func tool(_ id: String?, _ result: String = "ok") -> ChatMessage {
    ChatMessage(role: .tool, content: result, toolCallID: id, name: "lookup")
}

/// Mistral's history rules for chat completions, as mistral-common's validator applies them
/// (the strict pre-2026-04-27 form: no `user` after `tool`); returns the first violation.
func mistralRuleViolation(_ messages: [ChatMessage]) -> String? {
    guard let last = messages.last else { return "Conversation must have at least one message" }
    if let first = messages.first, first.role == .assistant, !first.toolCalls.isEmpty {
        return "Unexpected tool message (the first message's calls are not counted)"
    }
    if messages.count == 1, last.role != .user, last.role != .system {
        return "Conversation must start with a user message or system message"
    }
    var previous: Role?
    var expectedResults = 0
    var openIDs: [String] = []
    for (index, message) in messages.enumerated() {
        if let previous {
            let allowed: Set<Role> =
                switch previous {
                case .system: [.user, .assistant, .system]
                case .user: [.assistant, .system, .user]
                case .assistant: [.assistant, .user, .tool]
                case .tool: [.assistant, .tool]
                }
            if !allowed.contains(message.role) {
                return "\(index): Unexpected role '\(message.role)' after role '\(previous)'"
            }
        }
        if message.role == .system, messages[..<index].contains(where: { $0.role != .system }) {
            return "\(index): Unexpected role 'system' after a non-system message"
        }
        if message.name != nil, message.role != .tool { return "\(index): name on \(message.role)" }
        if message.prefix, index != messages.count - 1 {
            return "Assistant message with prefix True must be last message"
        }
        switch message.role {
        case .tool:
            guard expectedResults > 0 else { return "\(index): unexpected tool message" }
            expectedResults -= 1
            guard let id = message.toolCallID, ToolCallIDMap.isWireForm(id),
                let position = openIDs.firstIndex(of: id)
            else {
                return
                    "\(index): Tool call id was \(message.toolCallID ?? "nil") but must be a-z, A-Z, 0-9, with a length of 9."
            }
            openIDs.remove(at: position)
        case .assistant, .user:
            if expectedResults != 0 { return "\(index): Not the same number of function calls and responses" }
            if message.role == .assistant, !message.toolCalls.isEmpty {
                for call in message.toolCalls where !ToolCallIDMap.isWireForm(call.id) {
                    return "\(index): Tool call id was \(call.id) but must be a-z, A-Z, 0-9, with a length of 9."
                }
                expectedResults = message.toolCalls.count
                openIDs = message.toolCalls.map(\.id)
            }
        case .system: break
        }
        previous = message.role
    }
    if expectedResults != 0 { return "Not the same number of function calls and responses" }
    switch last.role {
    case .user, .tool: return nil
    case .assistant where last.prefix: return nil
    default: return "Expected last role User or Tool (or Assistant with prefix True) for serving but got \(last.role)"
    }
}
