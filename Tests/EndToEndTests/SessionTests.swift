import Foundation
import Glibc
import JSON
import TestSupport
import Testing

/// Contract §9 sessions end to end: the real agentd, its real SQLite file under the test's
/// state directory, the emulator upstream (whose `last-request` shows what agentd sent).
@Suite(.serialized, .blocksItsThread) struct SessionTests {
    let harness: DaemonHarness

    init() throws {
        harness = try DaemonHarness(agents: [
            "chat.yaml": Agents.chat, "tools.yaml": Agents.tools,
            "brief.yaml": Agents.chat + "\nsessions: {ttl: 1s}\n",
            "short.yaml": Agents.chat + "\nsessions: {max_messages: 3}\n",
            "ops.yaml": """
            model: mistral-small-latest
            socket: {mode: "0666"}
            tools:
              - name: echo
                parameters: {type: object, properties: {text: {type: string}}, required: [text]}
                exec: [/usr/bin/printf, "[%s]", "{text}"]
              - name: ask_user
                parameters: {type: object, properties: {question: {type: string}}}
            """,
        ])
        try harness.start()
    }

    /// The roles and contents of the messages of the latest upstream request.
    private func upstreamMessages() throws -> [String] {
        try (harness.emulator.lastRequest()["messages"]?.arrayValue ?? []).map { message in
            "\(message["role"]?.stringValue ?? "?"): \(message["content"]?.stringValue ?? "")"
        }
    }

    private func turn(_ client: LineClient, _ id: Int, session: String, input: String) throws -> JSONValue {
        try #require(
            client.request(["id": .int(Int64(id)), "session": .string(session), "input": .string(input)]).last)
    }

    @Test func theSecondTurnReachesUpstreamWithTheFirstOnesHistory() throws {
        let client = try harness.connect("chat")
        let first = try turn(client, 1, session: "s1", input: "first question")
        #expect(first["type"] == "done")
        #expect(first["session"] == "s1")
        let second = try turn(client, 2, session: "s1", input: "second question")
        #expect(second["type"] == "done")
        #expect(
            try upstreamMessages() == [
                "system: You are a test agent.", "user: first question", "assistant: Echo: first question",
                "user: second question",
            ])
        // Without `session` the same connection is stateless as before.
        _ = client.request(["id": 3, "input": "alone"])
        #expect(try upstreamMessages() == ["system: You are a test agent.", "user: alone"])
    }

    @Test func aClientToolTurnIsContinuedByTheToolResultAlone() throws {
        let client = try harness.connect("tools")
        let call = try turn(client, 1, session: "t1", input: "where is order 42? [tool:get_order_status]")
        #expect(call["finish_reason"] == "tool_calls")
        let callID = try #require(call["tool_calls"]?.arrayValue?.first?["id"]?.stringValue)
        let answer = try #require(
            client.request([
                "id": 2, "session": "t1",
                "messages": [
                    ["role": "tool", "tool_call_id": .string(callID), "name": "get_order_status", "content": "shipped"]
                ],
            ]).last)
        #expect(answer["type"] == "done", "\(answer.jsonText)")
        #expect(answer["finish_reason"] == "stop")
        let sent = try #require(harness.emulator.lastRequest()["messages"]?.arrayValue)
        #expect(sent.map { $0["role"]?.stringValue ?? "" } == ["user", "assistant", "tool"])
        let upstreamCall = sent[1]["tool_calls"]?.arrayValue?.first
        #expect(upstreamCall?["function"]?["name"] == "get_order_status")
        #expect(sent[2]["tool_call_id"] == upstreamCall?["id"])
    }

    @Test func aServerToolTurnIsStoredWithItsResultAndContinued() throws {
        let client = try harness.connect("ops")
        let first = try turn(client, 1, session: "st1", input: "run it [tool:echo]")
        #expect(first["type"] == "done", "\(first.jsonText)")
        #expect(first["finish_reason"] == "stop")
        #expect(try turn(client, 2, session: "st1", input: "and now?")["type"] == "done")
        let sent = try #require(harness.emulator.lastRequest()["messages"]?.arrayValue)
        #expect(sent.map { $0["role"]?.stringValue ?? "" } == ["user", "assistant", "tool", "assistant", "user"])
        #expect(sent[2]["tool_call_id"] == sent[1]["tool_calls"]?.arrayValue?.first?["id"])
    }

    @Test func aTurnWithServerAndClientCallsIsContinuedByTheClientsResult() throws {
        let client = try harness.connect("ops")
        let pending = try turn(client, 1, session: "mix", input: "both [tool:echo] [tool:ask_user]")
        #expect(pending["finish_reason"] == "tool_calls", "\(pending.jsonText)")
        let call = try #require(pending["tool_calls"]?.arrayValue?.first)
        #expect(call["name"] == "ask_user")
        let answer = try #require(
            client.request([
                "id": 2, "session": "mix",
                "messages": [["role": "tool", "tool_call_id": call["id"] ?? .null, "content": "yes"]],
            ]).last)
        #expect(answer["type"] == "done", "\(answer.jsonText)")
        let sent = try #require(harness.emulator.lastRequest()["messages"]?.arrayValue)
        #expect(sent.map { $0["role"]?.stringValue ?? "" } == ["user", "assistant", "tool", "tool"])
    }

    @Test func twoRequestsOnOneSessionAtOnceGiveExactlyOneSessionBusy() throws {
        let client = try harness.connect("chat")
        client.send(["id": "slow", "session": "busy", "input": "take your time [delay:600]"])
        client.send(["id": "eager", "session": "busy", "input": "me too"])
        var terminals: [String: JSONValue] = [:]
        while terminals.count < 2, let event = client.next() {
            if let id = event["id"]?.stringValue, event["type"] == "done" || event["type"] == "error" {
                terminals[id] = event
            }
        }
        #expect(terminals["slow"]?["type"] == "done")
        #expect(terminals["eager"]?["error"]?["code"] == "session_busy")
        #expect(terminals["eager"]?["error"]?["retryable"] == true)
    }

    @Test func aFailingRequestLeavesTheSessionUnchanged() throws {
        let client = try harness.connect("chat")
        _ = try turn(client, 1, session: "f1", input: "fine")
        let failed = try turn(client, 2, session: "f1", input: "break [fault:400]")
        #expect(failed["type"] == "error")
        let shown = try harness.control(["id": 1, "command": "session", "agent": "chat", "session": "f1"])
        #expect(shown["messages"]?.arrayValue?.compactMap { $0["content"]?.stringValue } == ["fine", "Echo: fine"])
    }

    @Test func aDoneThatWasReadSurvivesKillMinus9() throws {
        let client = try harness.connect("chat")
        let done = try turn(client, 1, session: "k1", input: "remember me")
        #expect(done["type"] == "done")
        harness.daemon?.signal(SIGKILL)
        _ = harness.daemon?.waitForExit()
        try harness.start()
        let again = try harness.connect("chat")
        _ = try turn(again, 2, session: "k1", input: "still there?")
        #expect(try upstreamMessages().contains("assistant: Echo: remember me"))
    }

    @Test func anotherUIDWithTheSameNameHasItsOwnSession() throws {
        let client = try harness.connect("chat")
        _ = try turn(client, 1, session: "shared", input: "root's secret")
        // The test directory is private; the other user needs to reach the socket.
        chmod(harness.directory.path, 0o755)
        let script = """
            import json, socket, sys
            s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
            s.sendall(json.dumps({"id": 1, "session": "shared", "input": "who am I?"}).encode() + b"\\n")
            buffer = b""
            while True:
                buffer += s.recv(65536)
                events = [json.loads(line) for line in buffer.split(b"\\n")[:-1]]
                if events and events[-1]["type"] in ("done", "error"): print(json.dumps(events[-1])); break
            """
        let other = try ChildProcess(
            "/usr/bin/setpriv",
            [
                "--reuid", "65534", "--regid", "65534", "--clear-groups", "/usr/bin/python3", "-c", script,
                harness.socketPath("chat"),
            ],
            logDirectory: harness.directory.path)
        #expect(other.waitForExit(within: 15) == 0, "\(other.stderr)")
        #expect(try JSONParser.parse(other.stdout)["type"] == "done")
        #expect(try upstreamMessages() == ["system: You are a test agent.", "user: who am I?"])
        let listed = try #require(
            harness.control(["id": 1, "command": "sessions", "agent": "chat"])["sessions"]?.arrayValue)
        let owners = listed.filter { $0["session"] == "shared" }.compactMap { $0["uid"]?.intValue }
        #expect(owners.sorted() == [0, 65534])
    }

    @Test func anExpiredSessionStartsAfreshAndTrimmingKeepsHistoriesValid() throws {
        let brief = try harness.connect("brief")
        _ = try turn(brief, 1, session: "e1", input: "soon forgotten")
        usleep(1_300_000)
        #expect(try turn(brief, 2, session: "e1", input: "anew")["type"] == "done")
        #expect(try upstreamMessages() == ["system: You are a test agent.", "user: anew"])

        let short = try harness.connect("short")
        for (index, text) in ["one", "two", "three"].enumerated() {
            #expect(try turn(short, index, session: "m1", input: text)["type"] == "done")
        }
        // Whole turns were dropped from the oldest: the history still starts with a user turn.
        #expect(
            try upstreamMessages() == [
                "system: You are a test agent.", "user: two", "assistant: Echo: two", "user: three",
            ])
    }

    @Test func controlCommandsListShowAndForgetSessions() throws {
        let client = try harness.connect("chat")
        _ = try turn(client, 1, session: "c1", input: "hello")
        let listed = try #require(
            harness.control(["id": 1, "command": "sessions", "agent": "chat"])["sessions"]?.arrayValue)
        let entry = try #require(listed.first { $0["session"] == "c1" })
        #expect(entry["agent"] == "chat")
        #expect(entry["messages"] == 2)
        #expect((entry["bytes"]?.intValue ?? 0) > 0)
        let updated = try #require(entry["updated"]?.doubleValue)
        #expect(abs(updated - Date().timeIntervalSince1970) < 60)
        #expect(try #require(entry["expires"]?.doubleValue) > updated)
        let status = try harness.control(["id": 2, "command": "status"])
        #expect((status["status"]?["agents"]?["chat"]?["sessions"]?.intValue ?? 0) >= 1)

        let forget: JSONValue = ["id": 3, "command": "forget", "agent": "chat", "session": "c1", "uid": 0]
        #expect(try harness.control(forget)["forgotten"] == true)
        #expect(try harness.control(forget)["forgotten"] == false)
        let shown = try harness.control(["id": 4, "command": "session", "agent": "chat", "session": "c1"])
        #expect(shown["messages"] == [])
        let bad = try harness.control(["id": 5, "command": "forget", "agent": "chat", "session": "c1", "colour": 1])
        #expect(bad["error"]?["code"] == "bad_request")
        #expect(bad["error"]?["message"]?.stringValue?.hasPrefix("colour:") == true)
    }

    @Test func aReloadRereadsTheSessionLimitsAndKeepsThemWhenAgentdYamlIsInvalid() throws {
        harness.directory.write("agentd.yaml", "sessions: {max_messages: 2}\n")
        _ = try harness.reload()
        let client = try harness.connect("chat")
        for (index, text) in ["one", "two"].enumerated() { _ = try turn(client, index, session: "r1", input: text) }
        let shown = try harness.control(["id": 1, "command": "session", "agent": "chat", "session": "r1"])
        #expect(shown["messages"]?.arrayValue?.compactMap { $0["content"]?.stringValue } == ["two", "Echo: two"])

        harness.directory.write("agentd.yaml", "sessions: {max_mesages: 50}\n")
        _ = try harness.reload()
        let status = try harness.control(["id": 2, "command": "status"])
        let errors = status["status"]?["last_reload"]?["errors"]?.arrayValue ?? []
        #expect(errors.contains { $0["message"]?.stringValue?.contains("max_mesages") == true })
        _ = try turn(client, 3, session: "r1", input: "three")
        let kept = try harness.control(["id": 3, "command": "session", "agent": "chat", "session": "r1"])
        #expect(kept["messages"]?.arrayValue?.count == 2)
    }

    @Test func theDatabaseIsPrivateToAgentd() throws {
        var directory = stat()
        #expect(stat(harness.stateDir, &directory) == 0)
        #expect(directory.st_mode & 0o777 == 0o700)
        var file = stat()
        #expect(stat("\(harness.stateDir)/sessions.sqlite3", &file) == 0)
        #expect(file.st_mode & 0o777 == 0o600)
    }
}
