import AgentProtocol
import JSON
import TestSupport
import Testing

@testable import LLM

@Suite("Message fixups")
struct MessageFixupsTests {
    private func roles(_ history: FixedHistory) -> [Role] { history.messages.map(\.role) }

    @Test("a user message after a tool result gets a blank assistant message before it")
    func toolThenUser() throws {
        let fixed = try MessageFixups.apply(
            messages: [user("q"), assistant(nil, calls: ["abcDEF123"]), tool("abcDEF123"), user("next")],
            toolChoice: nil
        )
        #expect(roles(fixed) == [.user, .assistant, .tool, .assistant, .user])
        #expect(fixed.messages[3] == ChatMessage(role: .assistant, content: " "))
    }

    @Test("nothing is inserted between consecutive tool results, only after the last")
    func consecutiveTools() throws {
        let fixed = try MessageFixups.apply(
            messages: [
                user("q"), assistant(nil, calls: ["aaaaaaaa1", "aaaaaaaa2"]), tool("aaaaaaaa1"), tool("aaaaaaaa2"),
                user("n"),
            ],
            toolChoice: nil
        )
        #expect(roles(fixed) == [.user, .assistant, .tool, .tool, .assistant, .user])
    }

    @Test("nothing is inserted after a trailing tool result")
    func trailingTool() throws {
        let fixed = try MessageFixups.apply(
            messages: [user("q"), assistant(nil, calls: ["aaaaaaaa1"]), tool("aaaaaaaa1")], toolChoice: nil
        )
        #expect(roles(fixed) == [.user, .assistant, .tool])
    }

    @Test("nothing is inserted between a tool result and an assistant message")
    func toolThenAssistant() throws {
        let fixed = try MessageFixups.apply(
            messages: [user("q"), assistant(nil, calls: ["aaaaaaaa1"]), tool("aaaaaaaa1"), assistant("a"), user("n")],
            toolChoice: nil
        )
        #expect(roles(fixed) == [.user, .assistant, .tool, .assistant, .user])
    }

    @Test("system messages after the first non-system one become user messages")
    func lateSystem() throws {
        let fixed = try MessageFixups.apply(
            system: ["agent prompt"], messages: [system("client prompt"), user("q"), assistant("a"), system("late")],
            toolChoice: nil
        )
        #expect(roles(fixed) == [.system, .system, .user, .assistant, .user])
        #expect(fixed.messages[4].content == "late")
    }

    @Test("a system message after a tool result becomes a user one and gets the blank assistant first")
    func systemAfterTool() throws {
        let fixed = try MessageFixups.apply(
            messages: [user("q"), assistant(nil, calls: ["aaaaaaaa1"]), tool("aaaaaaaa1"), system("late")],
            toolChoice: nil
        )
        #expect(roles(fixed) == [.user, .assistant, .tool, .assistant, .user])
    }

    @Test("a trailing assistant message gets prefix; prefix elsewhere is cleared")
    func trailingAssistant() throws {
        let fixed = try MessageFixups.apply(
            messages: [user("q"), assistant("x", prefix: true), user("again"), assistant("Once upon")], toolChoice: nil
        )
        #expect(fixed.messages.map(\.prefix) == [false, false, false, true])
    }

    @Test(
        "a forced tool choice is relaxed to auto when the history ends with a prefix",
        arguments: [ToolChoice.any, .required, .function(name: "lookup")]
    )
    func prefixConflict(choice: ToolChoice) throws {
        let withPrefix = try MessageFixups.apply(messages: [user("q"), assistant("Sure")], toolChoice: choice)
        #expect(withPrefix.toolChoice == .auto)
        let withoutPrefix = try MessageFixups.apply(messages: [user("q")], toolChoice: choice)
        #expect(withoutPrefix.toolChoice == choice)
    }

    @Test("auto and none stay as they are with a prefix")
    func prefixKeepsUnforcedChoice() throws {
        #expect(
            try MessageFixups.apply(messages: [user("q"), assistant("S")], toolChoice: ToolChoice.none).toolChoice
                == ToolChoice.none)
        #expect(try MessageFixups.apply(messages: [user("q"), assistant("S")], toolChoice: nil).toolChoice == nil)
    }

    @Test("odd tool call ids are mapped consistently; well-formed ones are kept")
    func idMapping() throws {
        let fixed = try MessageFixups.apply(
            messages: [
                user("q"), assistant(nil, calls: ["call_1", "D681PevKs"]), tool("D681PevKs"), tool("call_1"),
                assistant(nil, calls: ["call_1"]), tool(nil),
            ],
            toolChoice: nil
        )
        let firstCalls = fixed.messages[1].toolCalls.map(\.id)
        #expect(firstCalls[1] == "D681PevKs")
        #expect(ToolCallIDMap.isWireForm(firstCalls[0]))
        #expect(fixed.messages[3].toolCallID == firstCalls[0])
        #expect(fixed.messages[4].toolCalls[0].id == firstCalls[0])
        #expect(fixed.messages[5].toolCallID == firstCalls[0], "a result without id answers the open call")
        #expect(fixed.toolCallIDs.clientID(for: firstCalls[0]) == "call_1")
        #expect(fixed.toolCallIDs.clientID(for: "D681PevKs") == "D681PevKs")
        #expect(fixed.toolCallIDs.clientID(for: "newCall99") == "newCall99")
        #expect(mistralRuleViolation(fixed.messages) == nil)
    }

    @Test("derived ids are deterministic and never collide with each other or with kept ids")
    func idCollisions() {
        let odd = (0..<2000).map { "call_\($0)" } + ["", "x", "toolu_01A09q90qw90lq917835lq9"]
        let map = ToolCallIDMap(clientIDs: odd + ["D681PevKs"])
        let wire = odd.map(map.wireID(for:))
        #expect(Set(wire).count == wire.count)
        #expect(!wire.contains("D681PevKs"))
        #expect(wire.allSatisfy(ToolCallIDMap.isWireForm))
        #expect(ToolCallIDMap(clientIDs: odd).wireID(for: "call_7") == map.wireID(for: "call_7"))
    }

    @Test("fields Mistral rejects are dropped")
    func droppedFields() throws {
        var stray = user("q", name: "alice")
        stray.toolCalls = [ToolCall(id: "aaaaaaaa1", name: "f", arguments: [:])]
        stray.toolCallID = "aaaaaaaa1"
        var named = assistant("a")
        named.name = "bot"
        let fixed = try MessageFixups.apply(messages: [stray, named, user("n")], toolChoice: nil)
        #expect(fixed.messages[0] == ChatMessage(role: .user, content: "q"))
        #expect(fixed.messages[1] == ChatMessage(role: .assistant, content: "a"))
        let withTool = try MessageFixups.apply(
            messages: [user("q"), assistant(nil, calls: ["aaaaaaaa1"]), tool("aaaaaaaa1")], toolChoice: nil
        )
        #expect(withTool.messages[2].name == "lookup", "tool messages keep their name")
    }

    @Test(
        "histories no fixup can repair are bad requests naming the message",
        arguments: [
            ([tool("aaaaaaaa1")], "messages[0]"),
            ([user("q"), tool("aaaaaaaa1")], "messages[1]"),
            ([user("q"), assistant(nil, calls: ["aaaaaaaa1"]), tool("bbbbbbbb2")], "messages[2].tool_call_id"),
            ([user("q"), assistant(nil, calls: ["aaaaaaaa1"]), user("no result")], "messages[1].tool_calls"),
            ([user("q"), assistant(nil, calls: ["aaaaaaaa1"])], "messages[1].tool_calls"),
            ([user("q"), assistant(nil, calls: ["a", "a"]), tool("a"), tool("a")], "messages[1].tool_calls[1].id"),
            ([user("q"), assistant(nil, calls: ["a"]), tool("a"), tool(nil)], "messages[3]"),
            ([], "messages"),
            ([system("only")], "messages"),
        ] as [([ChatMessage], String)]
    )
    func unrepairable(messages: [ChatMessage], field: String) {
        #expect {
            try MessageFixups.apply(system: ["prompt"], messages: messages, toolChoice: nil)
        } throws: { error in
            guard let info = error as? ErrorInfo else { return false }
            return info.code == .badRequest && info.message.hasPrefix(field) && !info.retryable
        }
    }

    @Test("a history opening with a tool call is a bad request without a system prompt before it")
    func openingToolCall() throws {
        let history = [assistant(nil, calls: ["aaaaaaaa1"]), tool("aaaaaaaa1")]
        #expect(
            throws: ErrorInfo(
                code: .badRequest, message: "messages[0].tool_calls: a conversation cannot start with a tool call")
        ) {
            try MessageFixups.apply(messages: history, toolChoice: nil)
        }
        #expect(
            try mistralRuleViolation(MessageFixups.apply(system: ["sys"], messages: history, toolChoice: nil).messages)
                == nil)
    }

    @Test("generated histories either pass Mistral's rules once fixed, or are refused as unrepairable")
    func generatedHistories() throws {
        var generator = SplitMix64(seed: 0x5EED)
        var repaired = 0
        for _ in 0..<1000 {
            var (messages, repairable) = randomHistory(using: &generator)
            let prompts = Bool.random(using: &generator) ? ["sys"] : []
            if prompts.isEmpty, let first = messages.first, first.role == .assistant, !first.toolCalls.isEmpty {
                repairable = false
            }
            if prompts.isEmpty, messages.count == 1, messages[0].role == .assistant { repairable = false }
            let choice = [ToolChoice.auto, .any, .required, .function(name: "lookup"), .none].randomElement(
                using: &generator)
            do {
                let fixed = try MessageFixups.apply(system: prompts, messages: messages, toolChoice: choice)
                #expect(repairable, "accepted an unrepairable history: \(messages)")
                #expect(mistralRuleViolation(fixed.messages) == nil, "\(messages) -> \(fixed.messages)")
                if fixed.messages.last?.prefix == true {
                    #expect(fixed.toolChoice == .auto || fixed.toolChoice == ToolChoice.none)
                }
                // Every call id sent maps back to the id the client used.
                let clientIDs = messages.flatMap { $0.toolCalls.map(\.id) }
                let wireIDs = fixed.messages.flatMap { $0.toolCalls.map(\.id) }
                #expect(wireIDs.map(fixed.toolCallIDs.clientID(for:)) == clientIDs)
                repaired += 1
            } catch {
                #expect(!repairable, "refused a repairable history: \(messages): \(error)")
                #expect(error.code == .badRequest)
            }
        }
        #expect(repaired > 500)
    }

    /// A history in any role order: odd ids, consecutive and trailing tool results, late system
    /// messages, trailing assistants, stray names; sometimes broken beyond repair on purpose.
    private func randomHistory(using generator: inout SplitMix64) -> ([ChatMessage], Bool) {
        var messages: [ChatMessage] = []
        var counter = 0
        func newID() -> String {
            counter += 1
            return ["call_\(counter)", "ABCdef\(100 + counter)", "toolu_\(counter)_x", "\(counter)", "D681PevKs"]
                .randomElement(using: &generator)!
        }
        for _ in 0..<Int.random(in: 0...9, using: &generator) {
            switch Int.random(in: 0..<7, using: &generator) {
            case 0: messages.append(system("s"))
            case 1, 2: messages.append(user("u", name: Bool.random(using: &generator) ? "n" : nil))
            case 3:
                messages.append(
                    assistant(Bool.random(using: &generator) ? "a" : "", prefix: Bool.random(using: &generator)))
            default:
                var ids: [String] = []
                for _ in 0..<Int.random(in: 1...3, using: &generator) {
                    var id = newID()
                    while ids.contains(id) {
                        id = "dup\(counter)x"
                        counter += 1
                    }
                    ids.append(id)
                }
                messages.append(assistant(Bool.random(using: &generator) ? "thinking" : nil, calls: ids))
                for id in ids.shuffled(using: &generator) {
                    messages.append(tool(Int.random(in: 0..<6, using: &generator) == 0 ? nil : id))
                }
            }
        }
        guard messages.contains(where: { $0.role != .system }) else { return (messages, false) }
        switch Int.random(in: 0..<12, using: &generator) {
        case 0:  // a result for a call nobody made
            messages.insert(tool("zzzzzzzz9"), at: Int.random(in: 0...messages.count, using: &generator))
            return (messages, false)
        case 1 where messages.contains(where: { $0.role == .tool }):  // a result lost
            messages.remove(at: messages.lastIndex { $0.role == .tool }!)
            return (messages, false)
        default:
            return (messages, true)
        }
    }
}
