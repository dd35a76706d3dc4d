import Foundation
import Glibc
import JSON
import TestSupport
import Testing

/// Server tools end to end (CONTRACT §9): the real agentd runs real child processes while the
/// emulator plays the model, checking every intermediate history as Mistral does.
@Suite(.serialized, .blocksItsThread) struct ServerToolTests {
    let harness: DaemonHarness
    let scratch = TemporaryDirectory()

    init() throws {
        let ops = """
            model: mistral-small-latest
            max_steps: 4
            limits: {timeout: 30s}
            socket: {mode: "0666"}
            tools:
              - name: echo
                description: Print the text back
                parameters: {type: object, properties: {text: {type: string}}, required: [text]}
                exec: [/usr/bin/printf, "[%s]", "{text}"]
              - name: nap
                parameters: {type: object, properties: {seconds: {type: string}}}
                exec: [/bin/sleep, "{seconds}"]
              - name: fail
                exec: [/bin/sh, -c, "echo broken; exit 3"]
              - name: slow
                exec: [/bin/sleep, "30"]
                timeout: 1s
              - name: flood
                exec: [/bin/sh, -c, "yes flood | head -c 10485760"]
              - name: stubborn
                exec: [/bin/sh, -c, "trap '' TERM; sleep 30"]
                timeout: 1s
              - name: pidfile
                exec: [/bin/sh, -c, "echo $$ > \(scratch.path)/pid; exec sleep 30"]
              - name: ask_user
                description: Ask the person at the keyboard
                parameters: {type: object, properties: {question: {type: string}}}
            """
        let helper = """
            mode: agent
            agent_id: ag_0684fe0e0b98773e8000323fc71a3986
            socket: {mode: "0666"}
            tools:
              - name: uptime
                exec: [/usr/bin/printf, "up 3 days"]
            """
        harness = try DaemonHarness(agents: ["ops.yaml": ops, "helper.yaml": helper])
        try harness.start()
    }

    private func results(_ events: [JSONValue]) -> [JSONValue] {
        events.filter { $0["type"] == "tool_result" }.compactMap { $0["tool_result"] }
    }

    @Test func aThreeStepLoopEndsInOneDoneHoldingTheToolsOutputs() throws {
        let events = try harness.connect("ops").request([
            "id": "loop", "input": .string(#"count [call:echo:{"text":"one"}] [steps:2]"#),
        ])
        let done = try #require(events.last)
        #expect(done["type"] == "done", "\(done.jsonText)")
        #expect(done["steps"] == 3)
        #expect(events.filter { $0["type"] == "tool_call" }.count == 2)
        #expect(results(events).compactMap { $0["output"]?.stringValue } == ["[one]", "[one]"])
        #expect(done["text"]?.stringValue?.contains("echo=[one]") == true, "the results reached the model")
        #expect(
            done["messages"]?.arrayValue?.map { $0["role"]?.stringValue ?? "" } == [
                "assistant", "tool", "assistant", "tool", "assistant",
            ])
        let terminal = events.filter { $0["type"] == "done" || $0["type"] == "error" }
        #expect(terminal.count == 1)
    }

    @Test func parallelCallsRunConcurrently() throws {
        let started = ContinuousClock.now
        let events = try harness.connect("ops").request([
            "id": "par", "input": .string(#"[call:nap:{"seconds":"2"}] [call:nap:{"seconds":"2"}]"#),
        ])
        let elapsed = ContinuousClock.now - started
        #expect(events.last?["type"] == "done")
        #expect(results(events).count == 2 && results(events).allSatisfy { $0["ok"] == true })
        // One after the other they would take 4 s.
        #expect(elapsed < .milliseconds(3500), "two 2 s sleeps took \(elapsed)")
    }

    @Test func misbehavingToolsAreResultsAndTheRequestStillEnds() throws {
        let events = try harness.connect("ops").request([
            "id": "bad", "input": "[call:fail] [call:slow] [call:flood] [call:stubborn]",
        ])
        #expect(events.last?["type"] == "done", "\(events.last?.jsonText ?? "")")
        let byName = Dictionary(uniqueKeysWithValues: results(events).map { ($0["name"]?.stringValue ?? "", $0) })
        #expect(byName["fail"]?["ok"] == false)
        #expect(byName["fail"]?["output"]?.stringValue?.contains("exit status 3") == true)
        #expect(byName["slow"]?["ok"] == false)
        #expect(byName["stubborn"]?["ok"] == false)
        #expect(byName["stubborn"]?["output"]?.stringValue?.contains("SIGKILL") == true)
        let flood = try #require(byName["flood"]?["output"]?.stringValue)
        #expect(flood.hasSuffix("[output cut at 65536 bytes]"))
        #expect(flood.utf8.count < 70_000)
    }

    @Test func maxStepsEndsARunawayLoopWithStepLimit() throws {
        let events = try harness.connect("ops").request([
            "id": "runaway", "input": .string(#"[call:echo:{"text":"x"}] [steps:9]"#), "options": ["max_steps": 2],
        ])
        #expect(events.last?["error"]?["code"] == "step_limit")
        #expect(results(events).count == 1)
    }

    @Test func cancellingARunningToolEndsItsProcessGroupAndLeavesNoZombie() throws {
        let client = try harness.connect("ops")
        client.send(["id": "nap", "input": "[call:pidfile]"])
        var pid: Int32?
        let deadline = ContinuousClock.now + .seconds(10)
        while pid == nil, ContinuousClock.now < deadline {
            pid = (try? String(contentsOfFile: "\(scratch.path)/pid", encoding: .utf8))
                .flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            usleep(20_000)
        }
        let child = try #require(pid)
        #expect(kill(child, 0) == 0, "the tool runs")
        let cancelled = ContinuousClock.now
        client.send(["cancel": "nap"])
        let events = client.events(until: "nap")
        #expect(events.last?["error"]?["code"] == "cancelled")
        while kill(child, 0) == 0, ContinuousClock.now - cancelled < .seconds(3) { usleep(20_000) }
        #expect(kill(child, 0) == -1 && errno == ESRCH, "reaped, not left a zombie, within 3 s")
    }

    @Test func anArgumentReachesTheToolAsOneLiteralArgument() throws {
        let events = try harness.connect("ops").request([
            "id": "lit", "input": .string(#"[call:echo:{"text":"a; rm -rf / $(id) `id` b"}]"#),
        ])
        #expect(results(events).first?["output"] == "[a; rm -rf / $(id) `id` b]")
    }

    @Test func aMixedTurnEndsWithTheClientCallAndItsFollowUpCompletesIt() throws {
        let client = try harness.connect("ops")
        let question: JSONValue = [
            "role": "user", "content": .string(#"[call:echo:{"text":"srv"}] [call:ask_user:{"question":"which?"}]"#),
        ]
        let first = client.request(["id": "m1", "messages": [question]])
        let done = try #require(first.last)
        #expect(done["finish_reason"] == "tool_calls")
        let pending = try #require(done["tool_calls"]?.arrayValue)
        #expect(pending.map { $0["name"] } == ["ask_user"])
        #expect(results(first).map { $0["name"] } == ["echo"])
        let added = try #require(done["messages"]?.arrayValue)
        let answer: JSONValue = [
            "role": "tool", "tool_call_id": pending[0]["id"] ?? .null, "name": "ask_user", "content": "the blue one",
        ]
        let second = client.request(["id": "m2", "messages": .array([question] + added + [answer])])
        #expect(second.last?["type"] == "done", "\(second.last?.jsonText ?? "")")
        let text = try #require(second.last?["text"]?.stringValue)
        #expect(text.contains("echo=[srv]") && text.contains("ask_user=the blue one"))
    }

    @Test func doneMessagesContinueAConversationWithoutASession() throws {
        let client = try harness.connect("ops")
        var history: [JSONValue] = []
        for (index, input) in [#"[call:echo:{"text":"1"}]"#, "and then?", #"[call:echo:{"text":"3"}] [steps:2]"#]
            .enumerated()
        {
            history.append(["role": "user", "content": .string(input)])
            let events = client.request(["id": .int(Int64(index)), "messages": .array(history)])
            let done = try #require(events.last)
            #expect(done["type"] == "done", "request \(index): \(done.jsonText)")
            history += done["messages"]?.arrayValue ?? []
        }
        #expect(history.filter { $0["role"] == "tool" }.count == 3)
        #expect(history.last?["role"] == "assistant")
    }

    @Test func agentModeRunsTheFunctionsTheAgentFileImplements() throws {
        let events = try harness.connect("helper").request(["id": "a", "input": "how long? [call:uptime]"])
        #expect(results(events).first?["output"] == "up 3 days")
        #expect(
            events.last?["text"]?.stringValue?.contains("uptime=up 3 days") == true, "\(events.last?.jsonText ?? "")")
        #expect(events.last?["steps"] == 2)
    }

    @Test func statusCountsToolCallsAndErrors() throws {
        _ = try harness.connect("ops").request(["id": "s", "input": #"[call:fail] [call:echo:{"text":"ok"}]"#])
        // The counters are updated just after the terminal event is written: poll briefly.
        var ops: JSONValue = .null
        _ = try eventually {
            ops = try harness.control(["id": 1, "command": "status"])["status"]?["agents"]?["ops"] ?? .null
            return ops["tool_calls"]?.intValue ?? 0 >= 2
        }
        #expect(ops["tool_calls"]?.intValue ?? 0 >= 2)
        #expect(ops["tool_errors"]?.intValue ?? 0 >= 1)
    }
}
