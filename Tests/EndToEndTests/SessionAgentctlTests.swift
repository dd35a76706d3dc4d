import Foundation
import Glibc
import JSON
import TestSupport
import Testing

/// agentctl's side of sessions (contract §7): `chat --session`, `sessions`, `session show`,
/// `session forget`, and the interactive chat on a pseudo-terminal.
@Suite(.serialized, .blocksItsThread) struct SessionAgentctlTests {
    let harness: DaemonHarness

    init() throws {
        harness = try DaemonHarness(agents: ["chat.yaml": Agents.chat])
        try harness.start()
    }

    private func agentctl(_ arguments: [String]) throws -> AgentctlRun {
        try runAgentctl(["--socket-dir", harness.socketDir] + arguments, environment: ["NO_COLOR": "1"])
    }

    private func storedContents(_ session: String) throws -> [String] {
        let shown = try harness.control(["id": 1, "command": "session", "agent": "chat", "session": .string(session)])
        return shown["messages"]?.arrayValue?.compactMap { $0["content"]?.stringValue } ?? []
    }

    @Test func chatWithASessionThenListShowAndForgetIt() throws {
        #expect(try agentctl(["chat", "--session", "a1", "chat", "hello"]).stdout == "Echo: hello\n")
        let second = try agentctl(["chat", "--session", "a1", "chat", "again"])
        #expect(second.status == 0, "\(second)")
        #expect(try storedContents("a1") == ["hello", "Echo: hello", "again", "Echo: again"])

        let table = try agentctl(["sessions", "chat"])
        let lines = table.stdout.split(separator: "\n")
        #expect(
            lines.first?.split(separator: " ").filter { !$0.isEmpty } == [
                "AGENT", "SESSION", "UID", "MESSAGES", "SIZE", "UPDATED", "EXPIRES",
            ])
        let row = try #require(lines.first { $0.contains(" a1 ") }).split(separator: " ").filter { !$0.isEmpty }
        #expect(Array(row.prefix(4)) == ["chat", "a1", "0", "4"])
        #expect(
            try JSONParser.parse(try agentctl(["sessions", "--json"]).stdout)["sessions"]?.arrayValue?.isEmpty == false)

        let shown = try agentctl(["session", "show", "chat", "a1"])
        #expect(shown.stdout == "user: hello\nassistant: Echo: hello\nuser: again\nassistant: Echo: again\n")
        let raw = try JSONParser.parse(try agentctl(["session", "show", "--json", "chat", "a1"]).stdout)
        #expect(raw["messages"]?.arrayValue?.count == 4)

        #expect(try agentctl(["session", "forget", "chat", "a1"]).status == 0)
        let again = try agentctl(["session", "forget", "chat", "a1"])
        #expect(again.status == 1)
        #expect(again.stderr.contains("no session a1"))
        #expect(try storedContents("a1").isEmpty)
    }

    @Test func theInteractiveChatKeepsOneSessionAndCtrlCCancelsOnlyTheReply() throws {
        // A pty driver: types each turn, waits for what should follow, and reports the exit status.
        let driver = """
            import os, pty, select, sys, time
            pid, fd = pty.fork()
            if pid == 0:
                os.execv(sys.argv[1], sys.argv[1:])
            out = b""
            def expect(token, after):
                global out
                deadline = time.time() + 20
                while token not in out[after:]:
                    ready, _, _ = select.select([fd], [], [], max(0, deadline - time.time()))
                    if not ready:
                        sys.exit("timed out waiting for %r in %r" % (token, out))
                    out += os.read(fd, 4096)
                return out.index(token, after) + len(token)
            def turn(text, reply):
                mark = len(out)
                os.write(fd, text)
                expect(b"> ", expect(reply, mark))
            expect(b"> ", 0)
            turn(b"first turn\\r", b"Echo: first turn")
            mark = len(out)
            os.write(fd, b"slow one [delay:4000]\\r")
            time.sleep(0.5)
            os.write(fd, b"\\x03")
            expect(b"> ", expect(b"(cancelled)", mark))
            turn(b"second turn\\r", b"Echo: second turn")
            os.write(fd, b"\\x04")
            _, status = os.waitpid(pid, 0)
            sys.exit(os.waitstatus_to_exitcode(status))
            """
        let child = try ChildProcess(
            "/usr/bin/python3",
            [
                "-c", driver, "\(productsDirectory)/agentctl", "--socket-dir", harness.socketDir, "chat", "--session",
                "tty1", "chat",
            ],
            environment: ["NO_COLOR": "1"], logDirectory: harness.directory.path)
        #expect(child.waitForExit(within: 40) == 0, "\(child.stderr)")
        // Both turns in one session; the cancelled one was never stored.
        #expect(try storedContents("tty1") == ["first turn", "Echo: first turn", "second turn", "Echo: second turn"])
    }
}
