import Foundation
import Glibc
import JSON
import TestSupport
import Testing

/// Everything Mistral's current models return and accept (CONTRACT §4, §5), end to end: the
/// real agentd, real sockets and libcurl, the emulator producing each of Mistral's shapes.
@Suite(.serialized, .blocksItsThread) struct ReplyShapesTests {
    let harness: DaemonHarness

    private static let conversationsID = "agent_id: ag_0684fe0e0b98773e8000323fc71a3986"

    init() throws {
        harness = try DaemonHarness(agents: [
            "chat.yaml": Agents.chat,
            "thinker.yaml": Agents.chat + "\nreasoning_effort: medium\n",
            "quiet.yaml": Agents.chat + "\nreasoning_effort: medium\nreasoning: hide\n",
            "talker.yaml": "mode: agent\n\(Self.conversationsID)\nreasoning_effort: high\nsocket: {mode: \"0666\"}\n",
            "planner.yaml": """
            mode: agent
            agent_id: ag:3996db2b:20240805:planner:a8997aab
            agent_api: completions
            reasoning_effort: low
            retry: {attempts: 1}
            socket: {mode: "0666"}
            """,
            "searcher.yaml": "mode: agent\n\(Self.conversationsID)\nsocket: {mode: \"0666\"}\n",
        ])
        try harness.start()
    }

    private func types(_ events: [JSONValue]) -> [String] { events.compactMap { $0["type"]?.stringValue } }

    /// The events' types with runs of one type folded into one: the order of the phases.
    private func phases(_ events: [JSONValue]) -> [String] {
        var folded: [String] = []
        for type in types(events) where folded.last != type { folded.append(type) }
        return folded
    }

    @Test(arguments: ["thinker", "talker", "planner"])
    func reasoningStreamsAheadOfTheAnswerAndNeverInsideIt(agent: String) throws {
        let events = try harness.connect(agent).request(["id": "r", "input": "hello there"])
        #expect(phases(events) == ["start", "reasoning", "delta", "done"], "\(events.map(\.jsonText))")
        let thinking = events.filter { $0["type"] == "reasoning" }.compactMap { $0["text"]?.stringValue }.joined()
        #expect(thinking.hasPrefix("Thinking:"))
        let done = try #require(events.last)
        #expect(done["reasoning"]?.stringValue == thinking)
        #expect(done["text"] == "Echo: hello there")
        let deltas = events.filter { $0["type"] == "delta" }.compactMap { $0["text"]?.stringValue }.joined()
        #expect(!deltas.contains("Thinking"))
    }

    @Test func aWholeReplyCarriesItsReasoningInDone() throws {
        let events = try harness.connect("thinker").request(["id": 1, "input": "hi", "stream": false])
        #expect(types(events) == ["done"])
        #expect(events.last?["reasoning"]?.stringValue?.hasPrefix("Thinking:") == true)
        #expect(events.last?["text"] == "Echo: hi")
    }

    @Test func reasoningHideSendsNoReasoning() throws {
        let events = try harness.connect("quiet").request(["id": 1, "input": "hello"])
        #expect(!types(events).contains("reasoning"))
        #expect(events.last?["reasoning"] == nil)
        #expect(events.last?["text"] == "Echo: hello")
        #expect(events.last?["usage"]?["completion_tokens"]?.intValue ?? 0 > 0)
    }

    @Test func aRequestCanAskForReasoning() throws {
        let events = try harness.connect("chat").request([
            "id": 1, "input": "hello", "options": ["reasoning_effort": "high"],
        ])
        #expect(phases(events) == ["start", "reasoning", "delta", "done"])
        let plain = try harness.connect("chat").request(["id": 2, "input": "hello"])
        #expect(!types(plain).contains("reasoning"))
    }

    @Test func webSearchRunsThenCitesItsSources() throws {
        let events = try harness.connect("searcher").request([
            "id": "w", "input": "weather in Paris [builtin:web_search]",
        ])
        #expect(
            phases(events).filter { $0 != "delta" && $0 != "citation" }
                == ["start", "tool_execution", "done"], "\(events.map(\.jsonText))")
        let executions = events.filter { $0["type"] == "tool_execution" }.compactMap { $0["tool_execution"] }
        #expect(executions.compactMap { $0["state"]?.stringValue } == ["started", "delta", "delta", "done"])
        #expect(executions.allSatisfy { $0["name"] == "web_search" })
        let firstCitation = try #require(types(events).firstIndex(of: "citation"))
        let lastExecution = try #require(types(events).lastIndex(of: "tool_execution"))
        #expect(firstCitation > lastExecution)
        let citations = events.filter { $0["type"] == "citation" }.compactMap { $0["citation"] }
        #expect(citations.count == 2)
        #expect(citations.allSatisfy { $0["tool"] == "web_search" && $0["title"]?.stringValue != nil })
        #expect(
            citations.allSatisfy { $0.objectValue?.contains { $0.value == .null } == false }, "null fields left out")
        let done = try #require(events.last)
        #expect(done["citations"]?.arrayValue == citations)
        #expect(done["usage"]?["connector_tokens"]?.intValue ?? 0 > 0)
    }

    @Test func anImageToolMakesAFile() throws {
        let events = try harness.connect("searcher").request(["id": "i", "input": "a cat [builtin:image_generation]"])
        let file = try #require(events.first { $0["type"] == "file" }?["file"])
        #expect(file["tool"] == "image_generation")
        #expect(file["file_type"] == "png")
        #expect(events.last?["files"] == [file])
    }

    @Test func handoffsAndUnknownEventsPassOrAreSkipped() throws {
        let events = try harness.connect("searcher").request([
            "id": "h", "input": "ask the expert [handoff:expert] [unknown-event]",
        ])
        let handoffs = events.filter { $0["type"] == "handoff" }.compactMap { $0["handoff"] }
        #expect(handoffs.compactMap { $0["state"]?.stringValue } == ["started", "done"])
        #expect(handoffs.last?["agent_name"]?.stringValue != nil)
        #expect(events.last?["type"] == "done", "an event type agentd does not know is no error")
    }

    @Test(arguments: ["chat", "searcher", "planner"])
    func anImageAndAPDFReachMistralInItsShapes(agent: String) throws {
        let png =
            "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
        let events = try harness.connect(agent).request([
            "id": "m",
            "messages": [
                [
                    "role": "user",
                    "content": [
                        ["type": "text", "text": "What do these show?"],
                        ["type": "image_url", "image_url": .string(png)],
                        ["type": "image_url", "image_url": ["url": "https://example.com/cat.jpg", "detail": "low"]],
                        [
                            "type": "document_url", "document_url": "https://example.com/report.pdf",
                            "document_name": "report.pdf",
                        ],
                    ],
                ]
            ],
        ])
        #expect(events.last?["type"] == "done", "\(events.last?.jsonText ?? "no events")")
        #expect(events.last?["text"]?.stringValue?.contains("What do these show?") == true)
    }

    @Test func badChunksAreRefusedBeforeAnythingIsSent() throws {
        let client = try harness.connect("chat")
        let before = try harness.emulator.stats()["requests"]?.intValue
        let cases: [(JSONValue, String)] = [
            ([["type": "video", "video": "x"]], "messages[0].content[0].type: \"video\" is not a chunk type"),
            (
                [["type": "text", "text": "a"], ["type": "image_url", "image_url": "ftp://x/y.png"]],
                "messages[0].content[1].image_url: must be an https URL"
            ),
            (
                [["type": "image_url", "image_url": "data:image/png;base64,###="]],
                "messages[0].content[0].image_url: is not well-formed base64"
            ),
        ]
        for (index, (content, prefix)) in cases.enumerated() {
            let events = client.request(["id": .int(Int64(index)), "messages": [["role": "user", "content": content]]])
            #expect(events.last?["error"]?["code"] == "bad_request")
            #expect(
                events.last?["error"]?["message"]?.stringValue?.hasPrefix(prefix) == true,
                "\(events.last?.jsonText ?? "")")
        }
        let audio = try harness.connect("searcher").request([
            "id": "a",
            "messages": [["role": "user", "content": [["type": "input_audio", "input_audio": "UklGRg=="]]]],
        ])
        #expect(
            audio.last?["error"]?["message"]?.stringValue?.hasPrefix("messages[0].content[0]: the conversations API")
                == true)
        #expect(try harness.emulator.stats()["requests"]?.intValue == before, "nothing reached upstream")
    }

    @Test func aRateLimitSaysWhenToComeBack() throws {
        let events = try harness.connect("planner").request(["id": 1, "input": "busy [fault:429:retry=3]"])
        let error = try #require(events.last?["error"])
        #expect(error["code"] == "upstream_rate_limited")
        #expect(error["retry_after_s"] == 3)
        #expect(error["retryable"] == true)
    }

    @Test func statusCountsCachedTokensAndShowsTheRateLimitsLeft() throws {
        let events = try harness.connect("chat").request([
            "id": 1,
            "messages": [
                ["role": "user", "content": "one"], ["role": "assistant", "content": "two"],
                ["role": "user", "content": "three"],
            ],
            "options": ["prompt_cache_key": "conversation-7"],
        ])
        let cached = try #require(events.last?["usage"]?["cached_tokens"]?.intValue)
        #expect(cached > 0)
        // The counters are updated just after the terminal event is written: poll briefly.
        var agent: JSONValue = .null
        _ = try eventually {
            agent = try harness.control(["id": 1, "command": "status"])["status"]?["agents"]?["chat"] ?? .null
            return agent["cached_tokens"]?.intValue ?? 0 >= cached
        }
        #expect(agent["cached_tokens"]?.intValue ?? 0 >= cached)
        #expect(agent["rate_limits_remaining"]?["tokens-minute"]?.intValue != nil)
        #expect(agent["rate_limits_remaining"]?["req-minute"]?.intValue != nil)
    }
}
