import Foundation
import Glibc
import JSON
import TestSupport
import Testing

/// CONTRACT §4 end to end: the real agentd binary, real Unix sockets, the emulator upstream.
@Suite(.serialized, .blocksItsThread) struct DaemonProtocolTests {
    let harness: DaemonHarness

    init() throws {
        harness = try DaemonHarness(agents: [
            "chat.yaml": Agents.chat, "tools.yaml": Agents.tools, "helper.yml": Agents.agentMode,
            "tight.yaml": Agents.limited(maxConcurrent: 1, queue: 1),
            "guarded.yaml": Agents.chat + "\nallow: {users: [nobody]}\n",
        ])
        try harness.start()
    }

    @Test func readyComesAfterEverySocketIsBoundWithItsMode() throws {
        for agent in ["chat", "tools", "helper", "tight", "guarded"] {
            var status = stat()
            #expect(stat(harness.socketPath(agent), &status) == 0, "\(agent) socket missing at READY")
            #expect(status.st_mode & 0o777 == 0o666)
        }
        var control = stat()
        #expect(stat(harness.controlPath, &control) == 0)
        #expect(control.st_mode & 0o777 == 0o600)
        #expect(harness.notify.messages.last?.contains("STATUS=Serving 5 agents") == true)
    }

    @Test func streamsStartDeltasAndOneDone() throws {
        let client = try harness.connect("chat")
        let events = client.request(["id": "q1", "input": "hello there"])
        #expect(events.first?["type"] == "start")
        #expect(events.first?["agent"] == "chat")
        #expect(events.first?["model"] == "mistral-small-latest")
        let deltas = events.filter { $0["type"] == "delta" }.compactMap { $0["text"]?.stringValue }
        #expect(deltas.count >= 2)
        let done = try #require(events.last)
        #expect(done["type"] == "done")
        #expect(done["text"]?.stringValue == deltas.joined())
        #expect(done["text"]?.stringValue == "Echo: hello there")
        #expect(done["finish_reason"] == "stop")
        #expect(done["usage"]?["total_tokens"]?.intValue ?? 0 > 0)
        #expect(events.allSatisfy { $0["id"] == "q1" })
    }

    @Test func streamFalseSendsOnlyTheTerminalEvent() throws {
        let client = try harness.connect("chat")
        let events = client.request(["id": 7, "input": "quiet", "stream": false])
        #expect(events.count == 1)
        #expect(events.first?["type"] == "done")
        #expect(events.first?["id"] == 7)
    }

    @Test func requestsWithoutIdGetOneAssigned() throws {
        let client = try harness.connect("chat")
        client.send(#"{"input":"no id"}"#)
        let first = try #require(client.next())
        let id = try #require(first["id"]?.stringValue)
        #expect(!id.isEmpty)
        let rest = client.events(until: .string(id))
        #expect(rest.last?["type"] == "done")
    }

    @Test(arguments: [
        (#"not json"#, "not valid JSON"),
        (#"[1,2]"#, "must be a JSON object"),
        (#"{"id":1.5,"input":"x"}"#, "id:"),
        (#"{"id":"a"}"#, "messages or input"),
        (#"{"id":"a","input":3}"#, "input:"),
        (#"{"id":"a","input":"x","colour":"red"}"#, "colour"),
        (#"{"id":"a","messages":[{"role":"robot","content":"x"}]}"#, "messages[0].role"),
        (#"{"id":"a","messages":[{"role":"tool","content":"x"}]}"#, "messages[0].tool_call_id"),
        (#"{"id":"a","input":"x","stream":"yes"}"#, "stream:"),
        (#"{"id":"a","input":"x","options":{"temperature":9}}"#, "temperature"),
        (#"{"id":"a","input":"x","options":{"colour":1}}"#, "colour"),
        (#"{"id":"a","input":"x","id":"b"}"#, "duplicate key"),
    ])
    func badLinesGetBadRequestNamingTheFieldAndTheConnectionStaysUsable(line: String, mention: String) throws {
        let client = try harness.connect("chat")
        client.send(line)
        let error = try #require(client.next())
        #expect(error["type"] == "error")
        #expect(error["error"]?["code"] == "bad_request")
        let message = error["error"]?["message"]?.stringValue ?? ""
        #expect(message.contains(mention), "message was: \(message)")
        #expect(client.request(["id": "after", "input": "still here"]).last?["type"] == "done")
    }

    @Test func invalidUTF8AndNULBytesAreBadRequests() throws {
        let client = try harness.connect("chat")
        client.send(raw: Array(#"{"input":""#.utf8) + [0xFF, 0xFE] + Array("\"}\n".utf8))
        #expect(client.next()?["error"]?["code"] == "bad_request")
        client.send(raw: Array(#"{"input":"a"#.utf8) + [0] + Array("b\"}\n".utf8))
        #expect(client.next()?["error"]?["code"] == "bad_request")
        #expect(client.request(["id": "ok", "input": "fine"]).last?["type"] == "done")
    }

    @Test func overLongLinesAreRefusedAndTheConnectionStaysUsable() throws {
        let client = try harness.connect("chat")
        client.send(#"{"input":""# + String(repeating: "x", count: 1_100_000) + #""}"#)
        let error = try #require(client.next())
        #expect(error["error"]?["code"] == "request_too_large")
        #expect(client.request(["id": "next", "input": "short"]).last?["type"] == "done")
    }

    @Test func fortyPipelinedRequestsEachGetExactlyOneTerminalEventLast() throws {
        let client = try harness.connect("chat")
        var burst = ""
        for index in 0..<40 { burst += #"{"id":\#(index),"input":"number \#(index) [fault:slow]"}"# + "\n" }
        client.send(raw: Array(burst.utf8))
        var terminal: [Int64: Int] = [:]
        var afterTerminal = 0
        while terminal.count < 40, let event = client.next(within: 30) {
            let id = try #require(event["id"]?.intValue)
            if terminal[id] != nil { afterTerminal += 1 }
            if event["type"] == "done" || event["type"] == "error" { terminal[id, default: 0] += 1 }
        }
        #expect(terminal.count == 40)
        #expect(terminal.values.allSatisfy { $0 == 1 })
        #expect(afterTerminal == 0)
    }

    @Test func cancelEndsTheRequestAndClosesTheUpstreamWithinASecond() throws {
        let client = try harness.connect("chat")
        client.send(["id": "long", "input": "hang on [fault:stall]"])
        _ = client.next()  // start
        #expect(eventually { harness.emulator.activeStreams == 1 })
        client.send(["cancel": "long"])
        let error = try #require(client.events(until: "long").last)
        #expect(error["error"]?["code"] == "cancelled")
        #expect(eventually(within: 1) { harness.emulator.activeStreams == 0 })
    }

    @Test func cancellingARequestBlockedOnAClientThatIsNotReadingStillEndsItWithCancelled() throws {
        let client = try harness.connect("chat")
        client.send(["id": "big", "input": "[words:50000]"])
        // Not reading: agentd's writes for "big" fill the socket and wait.
        usleep(500_000)
        client.send(["cancel": "big"])
        let events = client.events(until: "big", within: 30)
        #expect(events.last?["type"] == "error", "\(events.last?.jsonText ?? "no events")")
        #expect(events.last?["error"]?["code"] == "cancelled")
    }

    @Test func cancelOfAnUnknownIdIsUnknownRequest() throws {
        let client = try harness.connect("chat")
        client.send(["cancel": "nope"])
        let error = try #require(client.next())
        #expect(error["id"] == "nope")
        #expect(error["error"]?["code"] == "unknown_request")
    }

    @Test func disconnectClosesTheUpstreamWithinASecond() throws {
        var client: LineClient? = try harness.connect("chat")
        client?.send(["id": "gone", "input": "bye [fault:stall]"])
        _ = client?.next()
        #expect(eventually { harness.emulator.activeStreams == 1 })
        client = nil
        #expect(eventually(within: 1) { harness.emulator.activeStreams == 0 })
    }

    @Test func halfClosedClientsStillGetTheirReply() throws {
        let client = try harness.connect("chat")
        client.send(["id": "h", "input": "half close"])
        client.shutdownWrite()
        let events = client.events(until: "h")
        #expect(events.last?["type"] == "done")
        #expect(client.isClosedByPeer())
    }

    @Test func toolCallsAreStreamedAndListedInDone() throws {
        let client = try harness.connect("tools")
        let events = client.request(["id": "t", "input": "where is it [tool:get_order_status]"])
        let call = try #require(events.first { $0["type"] == "tool_call" }?["tool_call"])
        #expect(call["name"] == "get_order_status")
        #expect(call["arguments"] == ["order_id": "42"])
        let done = try #require(events.last)
        #expect(done["finish_reason"] == "tool_calls")
        #expect(done["tool_calls"]?.arrayValue?.count == 1)
    }

    @Test func clientToolCallIdsComeBackUnchanged() throws {
        let client = try harness.connect("tools")
        let history: JSONValue = [
            ["role": "user", "content": "status of 42?"],
            [
                "role": "assistant",
                "tool_calls": [
                    ["id": "call_abc-123_long", "name": "get_order_status", "arguments": ["order_id": "42"]]
                ],
            ],
            ["role": "tool", "tool_call_id": "call_abc-123_long", "content": "shipped"],
            ["role": "user", "content": "and again [tool:get_order_status]"],
        ]
        let events = client.request(["id": "ids", "messages": history])
        #expect(events.last?["type"] == "done", "\(events.last?.jsonText ?? "")")
    }

    @Test func agentModeStreamsThroughConversations() throws {
        let client = try harness.connect("helper")
        let events = client.request(["id": "a", "input": "hi agent"])
        #expect(events.first?["mode"] == "agent")
        #expect(events.first?["agent_id"] == "ag_0684fe0e0b98773e8000323fc71a3986")
        #expect(events.last?["type"] == "done")
        #expect(events.last?["text"] == "Echo: hi agent")
    }

    @Test func upstreamFailuresBecomeClearErrors() throws {
        let client = try harness.connect("chat")
        let rejectedEvents = client.request(["id": "r", "input": "x [fault:400]"])
        // No `start`: the upstream never began a reply.
        #expect(rejectedEvents.count == 1, "\(rejectedEvents.map(\.jsonText))")
        let rejected = rejectedEvents.last
        #expect(rejected?["error"]?["code"] == "upstream_rejected")
        #expect(rejected?["error"]?["status"] == 400)
        #expect(rejected?["error"]?["retryable"] == false)
        let limited = client.request(["id": "l", "input": "x [fault:429:retry=0]"]).last
        #expect(limited?["error"]?["code"] == "upstream_rate_limited")
        #expect(limited?["error"]?["retryable"] == true)
        let stalled = client.request(["id": "s", "input": "x [fault:stall]"]).last
        #expect(stalled?["error"]?["code"] == "timeout")
    }

    @Test func beyondMaxConcurrentAndQueueIsOverloaded() throws {
        let client = try harness.connect("tight")
        for index in 0..<3 { client.send(["id": .int(Int64(index)), "input": "wait [fault:stall]"]) }
        var codes: [Int64: String] = [:]
        while let event = client.next(within: 3), codes.count < 1 {
            if event["type"] == "error" { codes[event["id"]!.intValue!] = event["error"]?["code"]?.stringValue }
        }
        #expect(codes[2] == "overloaded")
        for index in 0..<2 { client.send(["cancel": .int(Int64(index))]) }
    }

    @Test func allowListRefusesOtherUsers() throws {
        let client = try harness.connect("guarded")
        let error = try #require(client.request(["id": "f", "input": "let me in"]).last)
        #expect(error["error"]?["code"] == "forbidden")
    }

    @Test func controlListStatusAndChat() throws {
        let list = try harness.control(["id": 1, "command": "list"])
        let agents = try #require(list["agents"]?.arrayValue)
        #expect(agents.compactMap { $0["name"]?.stringValue } == ["chat", "guarded", "helper", "tight", "tools"])
        let helper = try #require(agents.first { $0["name"] == "helper" })
        #expect(helper["agent_id"] == "ag_0684fe0e0b98773e8000323fc71a3986")
        #expect(helper["state"] == "ok")
        #expect(helper["socket"]?.stringValue == harness.socketPath("helper"))

        let chat = try LineClient(path: harness.controlPath)
        let events = chat.request(["id": "c", "command": "chat", "agent": "chat", "input": "via control"])
        #expect(events.last?["text"] == "Echo: via control")

        let status = try harness.control(["id": 2, "command": "status"])["status"]
        #expect(status?["pid"]?.intValue == Int64(harness.daemon!.pid))
        #expect(status?["agents"]?["chat"]?["requests"]?.intValue ?? 0 >= 1)
        #expect(status?["last_reload"]?["ok"] == true)

        let unknown = try harness.control(["id": 3, "command": "chat", "agent": "ghost", "input": "x"])
        #expect(unknown["error"]?["code"] == "unknown_agent")
        let bogus = try harness.control(["id": 4, "command": "dance"])
        #expect(bogus["error"]?["code"] == "bad_request")
    }
}
