public import AgentProtocol

/// A history rewritten so that Mistral accepts it (CONTRACT §5 fixups).
public struct FixedHistory: Sendable, Hashable {
    public var messages: [ChatMessage]
    /// The tool choice to send with these messages (see `MessageFixups.apply`).
    public var toolChoice: ToolChoice?
    /// How tool call ids were rewritten; used to give replies the client's ids back.
    public var toolCallIDs: ToolCallIDMap
}

/// The rewrites Mistral's history rules require, as a pure function.
public enum MessageFixups {
    /// Applies the five fixups of CONTRACT §5 to `system` prompts followed by `messages`:
    /// 1. a `tool` message followed by a `user` message (or a system message made a user one)
    ///    gets `{"role":"assistant","content":" "}` between them — never between two tool
    ///    results, never after a trailing tool message;
    /// 2. `system` messages after the first non-system message become `user`;
    /// 3. a trailing `assistant` message gets `prefix: true` (and `prefix` is cleared on every
    ///    other message, since Mistral requires a prefix message to be last). Mistral refuses a
    ///    prefix together with a forced tool choice ("Cannot set an assistant prefix with function
    ///    calling"): a forced choice (`any`, `required`, a named function) is relaxed to `auto`
    ///    for that call, because continuing the client's text is what a trailing assistant asks for;
    /// 4. tool call ids not in Mistral's nine-character form are mapped consistently across
    ///    `tool_calls` and `tool_call_id` (a tool result without an id answers the first call of
    ///    the assistant message it follows that no other result names);
    /// 5. fields Mistral rejects are dropped: `name` except on tool messages, `tool_calls` except
    ///    on assistant messages, `tool_call_id` except on tool messages.
    ///
    /// Throws `bad_request`, naming the message index (in `messages`) and field, for histories no
    /// rewrite can repair: a tool result answering no call of the assistant message it follows,
    /// calls left without a result, duplicate call ids in one message, a history opening with a
    /// tool call or holding nothing to answer.
    public static func apply(
        system: [String] = [], messages: [ChatMessage], toolChoice: ToolChoice?
    ) throws(ErrorInfo) -> FixedHistory {
        let answered = try pairToolResults(messages)
        let ids = ToolCallIDMap(clientIDs: messages.flatMap { $0.toolCalls.map(\.id) })

        var fixed = system.map { ChatMessage(role: .system, content: $0) }
        var seenNonSystem = false
        for (index, message) in messages.enumerated() {
            var cleaned = ChatMessage(role: message.role)
            switch message.role {
            case .system where !seenNonSystem:
                cleaned.content = message.content ?? ""
            case .system, .user:
                cleaned.role = .user
                cleaned.content = message.content ?? ""
            case .assistant:
                cleaned.content = message.content
                cleaned.toolCalls = message.toolCalls.map {
                    ToolCall(id: ids.wireID(for: $0.id), name: $0.name, arguments: $0.arguments)
                }
            case .tool:
                cleaned.content = message.content ?? ""
                cleaned.toolCallID = answered[index].map(ids.wireID(for:))
                cleaned.name = message.name
            }
            // An empty chunk list says what an empty text says, in the form Mistral takes for every role.
            if case .chunks(let chunks)? = cleaned.content, chunks.isEmpty { cleaned.content = "" }
            if cleaned.role == .user, fixed.last?.role == .tool {
                fixed.append(ChatMessage(role: .assistant, content: " "))
            }
            fixed.append(cleaned)
            if message.role != .system { seenNonSystem = true }
        }

        guard let last = fixed.last, last.role != .system else {
            throw ErrorInfo(code: .badRequest, message: "messages: there is no user message to answer")
        }
        // Mistral's validator skips the first message when pairing calls with results.
        if let first = fixed.first, first.role == .assistant, !first.toolCalls.isEmpty {
            throw ErrorInfo(
                code: .badRequest, message: "messages[0].tool_calls: a conversation cannot start with a tool call"
            )
        }
        if fixed.count == 1, last.role == .assistant {
            throw ErrorInfo(
                code: .badRequest, message: "messages: a conversation cannot consist of one assistant message")
        }
        var toolChoice = toolChoice
        if last.role == .assistant {
            fixed[fixed.count - 1].prefix = true
            switch toolChoice {
            case .some(.any), .some(.required), .some(.function): toolChoice = .auto
            case .some(.auto), .some(.none), nil: break
            }
        }
        return FixedHistory(messages: fixed, toolChoice: toolChoice, toolCallIDs: ids)
    }

    /// The call id each tool message answers (by index), checking that every call of an
    /// assistant message is answered by the tool messages right after it, and nothing else is.
    private static func pairToolResults(_ messages: [ChatMessage]) throws(ErrorInfo) -> [Int: String] {
        var answered: [Int: String] = [:]
        var openCalls: (owner: Int, pending: [String])? = nil

        func closeBlock() throws(ErrorInfo) {
            guard let block = openCalls else { return }
            openCalls = nil
            guard block.pending.isEmpty else {
                let list = block.pending.map { "\"\($0)\"" }.joined(separator: ", ")
                throw ErrorInfo(
                    code: .badRequest,
                    message: "messages[\(block.owner)].tool_calls: no tool message answers call \(list)"
                )
            }
        }

        for (index, message) in messages.enumerated() {
            switch message.role {
            case .tool:
                guard var block = openCalls else {
                    throw ErrorInfo(
                        code: .badRequest,
                        message:
                            "messages[\(index)]: a tool result must follow the assistant message with its tool call"
                    )
                }
                let position: Int
                if let id = message.toolCallID {
                    guard let match = block.pending.firstIndex(of: id) else {
                        throw ErrorInfo(
                            code: .badRequest,
                            message:
                                "messages[\(index)].tool_call_id: \"\(id)\" answers no unanswered call of messages[\(block.owner)]"
                        )
                    }
                    position = match
                } else {
                    // The first open call that no later result of this block names.
                    let namedLater = messages[(index + 1)...].prefix { $0.role == .tool }.compactMap(\.toolCallID)
                    guard let free = block.pending.firstIndex(where: { !namedLater.contains($0) }) else {
                        throw ErrorInfo(
                            code: .badRequest,
                            message:
                                "messages[\(index)].tool_call_id: missing, and no call of messages[\(block.owner)] is left to answer"
                        )
                    }
                    position = free
                }
                answered[index] = block.pending.remove(at: position)
                openCalls = block
            case .assistant:
                try closeBlock()
                guard !message.toolCalls.isEmpty else { continue }
                var seen = Set<String>()
                for (callIndex, call) in message.toolCalls.enumerated() where !seen.insert(call.id).inserted {
                    throw ErrorInfo(
                        code: .badRequest,
                        message:
                            "messages[\(index)].tool_calls[\(callIndex)].id: \"\(call.id)\" is used twice in this message"
                    )
                }
                openCalls = (owner: index, pending: message.toolCalls.map(\.id))
            case .system, .user:
                try closeBlock()
            }
        }
        try closeBlock()
        return answered
    }
}
