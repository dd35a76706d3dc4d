import Foundation
import Glibc
import JSON
import TestSupport
import Testing

/// The venv `make test` creates (scripts/mcp-venv.sh) with the real MCP servers and the SDK
/// of the fixture. Missing, the tests fail: they must never pass by running nothing.
enum MCPVenv {
    static let path = "\(repositoryRoot)/.build/mcp-venv"
    static let fixture = "\(repositoryRoot)/Tests/MCPFixtures/fixture_server.py"

    static func require() throws {
        guard access("\(path)/bin/mcp-server-time", X_OK) == 0 else {
            throw TestFailure(
                "the MCP test servers are missing: run `make mcp-venv` (make test does) to create \(path)")
        }
    }
}

/// MCP servers end to end (contract §9). One suite at a time: these tests block a thread
/// while they wait on real processes, and the Python servers' starts are CPU-heavy, so run
/// side by side they would starve the timing-sensitive tests of other suites on 2 cores.
@Suite(.serialized, .blocksItsThread) enum MCPEndToEnd {}

/// The real agentd spawns real MCP servers from PyPI (mcp-server-time, mcp-server-git) and a
/// fixture written with the Python SDK, while the emulator plays the model.
extension MCPEndToEnd {
    @Suite(.serialized) struct MCPServerTests {
        let harness: DaemonHarness
        let scratch = TemporaryDirectory()

        init() throws {
            try MCPVenv.require()
            let repo = "\(scratch.path)/repo"
            try FileManager.default.createDirectory(atPath: repo, withIntermediateDirectories: true)
            let git = Process()
            git.executableURL = URL(fileURLWithPath: "/usr/bin/git")
            git.arguments = ["init", "-q", repo]
            try git.run()
            git.waitUntilExit()
            let config = """
                mcp_servers:
                  time:
                    command: [\(MCPVenv.path)/bin/mcp-server-time, --local-timezone, UTC]
                  git:
                    command: [\(MCPVenv.path)/bin/mcp-server-git, --repository, \(repo)]
                    tools: [git_status, git_log]
                  fx:
                    command: [\(MCPVenv.path)/bin/python, \(MCPVenv.fixture)]
                    env: {FIXTURE_DIR: \(scratch.path)}
                    timeout: 5s
                """
            let clock = """
                model: mistral-small-latest
                socket: {mode: "0666"}
                limits: {timeout: 30s}
                mcp_servers: [time, git, fx]
                """
            let helper = """
                mode: agent
                agent_id: ag_0684fe0e0b98773e8000323fc71a3986
                socket: {mode: "0666"}
                mcp_servers: [time]
                """
            harness = try DaemonHarness(agents: ["clock.yaml": clock, "helper.yaml": helper], config: config)
            try harness.start()
            self.repo = repo
        }

        let repo: String

        private func results(_ events: [JSONValue]) -> [JSONValue] {
            events.filter { $0["type"] == "tool_result" }.compactMap { $0["tool_result"] }
        }

        private func server(_ name: String) throws -> JSONValue? {
            let status = try harness.control(["id": 1, "command": "status"])
            return status["status"]?["mcp_servers"]?.arrayValue?.first { $0["name"]?.stringValue == name }
        }

        @Test func aRealServersToolReachesTheModelAndRunsInTheToolLoop() throws {
            let events = try harness.connect("clock").request([
                "id": "t", "input": .string(#"what time? [call:time__get_current_time:{"timezone":"UTC"}]"#),
            ])
            let done = try #require(events.last)
            #expect(done["type"] == "done", "\(done.jsonText)")
            let result = try #require(results(events).first)
            #expect(result["ok"] == true, "\(result.jsonText)")
            #expect(result["output"]?.stringValue?.contains("UTC") == true, "\(result.jsonText)")
            #expect(done["text"]?.stringValue?.contains("time__get_current_time=") == true)
        }

        @Test func theToolsAllowListFiltersWhatAServerOffers() throws {
            let git = try #require(try server("git"))
            #expect(git["tools"]?.arrayValue?.compactMap(\.stringValue).sorted() == ["git_log", "git_status"])
            let events = try harness.connect("clock").request([
                "id": "g", "input": .string("[call:git__git_status:{\"repo_path\":\"\(repo)\"}]"),
            ])
            let result = try #require(results(events).first)
            #expect(result["ok"] == true, "\(result.jsonText)")
            #expect(result["output"]?.stringValue?.contains("branch") == true, "\(result.jsonText)")
        }

        @Test func agentModeRunsAnMCPToolTheMistralAgentCalls() throws {
            let events = try harness.connect("helper").request([
                "id": "a", "input": .string(#"[call:time__get_current_time:{"timezone":"UTC"}]"#),
            ])
            #expect(events.last?["type"] == "done", "\(events.last?.jsonText ?? "")")
            #expect(results(events).first?["ok"] == true, "\(results(events).first?.jsonText ?? "none")")
        }

        @Test func statusShowsEachServersStatePidToolsAndRestarts() throws {
            let time = try #require(try server("time"))
            #expect(time["state"] == "ready")
            let pid = try #require(time["pid"]?.intValue)
            #expect(kill(Int32(pid), 0) == 0)
            #expect(time["tools"]?.arrayValue?.contains("get_current_time") == true)
            #expect(time["restarts"] == 0)
        }

        @Test func agentctlStatusPrintsEachServer() throws {
            let run = try runAgentctl(["status", "--socket-dir", harness.socketDir])
            #expect(run.status == 0, "\(run)")
            let lines = run.stdout.split(separator: "\n").map(String.init)
            #expect(lines.contains { $0.hasPrefix("MCP_SERVER") && $0.contains("RESTARTS") }, "\(run.stdout)")
            let time = try #require(lines.first { $0.hasPrefix("time ") }, "\(run.stdout)")
            #expect(time.contains("ready") && time.contains("get_current_time"))
        }

        @Test func aToolThatReportsAnErrorIsOkFalse() throws {
            let events = try harness.connect("clock").request(["id": "f", "input": "[call:fx__fail]"])
            #expect(events.last?["type"] == "done")
            let result = try #require(results(events).first)
            #expect(result["ok"] == false)
            #expect(result["output"]?.stringValue?.contains("failed on purpose") == true, "\(result.jsonText)")
        }

        @Test func cancellingASlowCallSendsNotificationsCancelledAndEndsWithinASecond() throws {
            let client = try harness.connect("clock")
            client.send(["id": "slow", "input": .string(#"[call:fx__slow:{"seconds":30}]"#)])
            var sawCall = false
            while !sawCall, let event = client.next(within: 10) {
                sawCall = event["type"] == "tool_call"
            }
            #expect(sawCall)
            usleep(300_000)  // the call has reached the server
            let cancelled = ContinuousClock.now
            client.send(["cancel": "slow"])
            let events = client.events(until: "slow")
            #expect(events.last?["error"]?["code"] == "cancelled", "\(events.last?.jsonText ?? "")")
            #expect(ContinuousClock.now - cancelled < .seconds(1))
            #expect(
                eventually(within: 5) { access("\(scratch.path)/cancelled", F_OK) == 0 }, "the server saw the cancel")
            // The server goes on serving.
            let after = try harness.connect("clock").request([
                "id": "e", "input": .string(#"[call:fx__echo:{"text":"hi"}]"#),
            ])
            #expect(results(after).first?["output"] == "echo:hi")
        }

        @Test func aServerThatCrashesMidCallIsRespawnedAndTheCallIsOkFalse() throws {
            let before = try #require(try server("fx")?["pid"]?.intValue)
            let events = try harness.connect("clock").request(["id": "c", "input": "[call:fx__crash]"])
            #expect(events.last?["type"] == "done", "\(events.last?.jsonText ?? "")")
            #expect(results(events).first?["ok"] == false, "\(results(events).first?.jsonText ?? "none")")
            var fx: JSONValue?
            #expect(
                try eventually(within: 10) {
                    fx = try server("fx")
                    return fx?["state"] == "ready" && fx?["pid"]?.intValue != before
                }, "\(fx?.jsonText ?? "")")
            #expect(fx?["restarts"] == 1)
            let after = try harness.connect("clock").request([
                "id": "e", "input": .string(#"[call:fx__echo:{"text":"x"}]"#),
            ])
            #expect(results(after).first?["ok"] == true)
        }

        @Test func aChangedToolListIsReadAgainAndOffered() throws {
            let events = try harness.connect("clock").request(["id": "g", "input": "[call:fx__grow]"])
            #expect(results(events).first?["output"] == "grown")
            #expect(try eventually { try server("fx")?["tools"]?.arrayValue?.contains("extra") == true })
            let extra = try harness.connect("clock").request(["id": "x", "input": "[call:fx__extra]"])
            #expect(results(extra).first?["output"] == "extra tool here", "\(extra.last?.jsonText ?? "")")
        }

        @Test func noServerProcessOutlivesAgentd() throws {
            let pids = try ["time", "git", "fx"].map { try #require(try server($0)?["pid"]?.intValue) }
            #expect(harness.stop() == 0)
            for pid in pids {
                #expect(eventually(within: 5) { kill(Int32(pid), 0) == -1 }, "server \(pid) still runs")
            }
        }
    }

}

/// Servers that fail, and reloads: each test has its own agentd.
extension MCPEndToEnd {
    @Suite(.serialized) struct MCPServerFailureAndReloadTests {
        @Test func aServerThatNeverAnswersInitializeIsFailedAndItsAgentStillServes() throws {
            try MCPVenv.require()
            let config = """
                mcp_servers:
                  hang:
                    command: [\(MCPVenv.path)/bin/python, \(MCPVenv.fixture), --hang]
                    timeout: 1s
                """
            // Agent mode: the Mistral agent declares the function, so the model calls it even
            // though the server offers nothing.
            let agent = """
                mode: agent
                agent_id: ag_0684fe0e0b98773e8000323fc71a3986
                socket: {mode: "0666"}
                mcp_servers: [hang]
                """
            let harness = try DaemonHarness(agents: ["waits.yaml": agent], config: config)
            try harness.start()
            let status = try #require(try harness.control(["id": 1, "command": "status"])["status"])
            let errors = status["last_reload"]?["errors"]?.arrayValue ?? []
            #expect(
                errors.contains { $0["message"]?.stringValue?.contains("MCP server 'hang' did not start") == true },
                "\(status.jsonText)")
            let hang = try #require(status["mcp_servers"]?.arrayValue?.first)
            #expect(hang["state"] == "failed")
            #expect(hang["reason"]?.stringValue?.contains("initialize") == true, "\(hang.jsonText)")
            let events = try harness.connect("waits").request(["id": "w", "input": "[call:hang__anything] hello"])
            #expect(events.last?["type"] == "done", "\(events.last?.jsonText ?? "")")
            let result = try #require(results(events).first)
            #expect(result["ok"] == false)
            #expect(result["output"]?.stringValue?.contains("not ready") == true, "\(result.jsonText)")
        }

        @Test func reloadKeepsAnUnchangedServersProcessAndStopsOneNoAgentNames() throws {
            try MCPVenv.require()
            let scratch = TemporaryDirectory()
            let config = """
                mcp_servers:
                  time:
                    command: [\(MCPVenv.path)/bin/mcp-server-time]
                  fx:
                    command: [\(MCPVenv.path)/bin/python, \(MCPVenv.fixture)]
                    env: {FIXTURE_DIR: \(scratch.path)}
                """
            let uses = { (servers: String) in
                """
                model: mistral-small-latest
                socket: {mode: "0666"}
                mcp_servers: [\(servers)]
                """
            }
            let harness = try DaemonHarness(agents: ["a.yaml": uses("time"), "b.yaml": uses("fx")], config: config)
            try harness.start()
            func pid(_ name: String) throws -> Int64? {
                let status = try harness.control(["id": 1, "command": "status"])
                return status["status"]?["mcp_servers"]?.arrayValue?.first { $0["name"]?.stringValue == name }?["pid"]?
                    .intValue
            }
            let time = try #require(try pid("time"))
            let fx = try #require(try pid("fx"))
            harness.directory.write("agents.d/b.yaml", uses("time"))
            _ = try harness.reload()
            #expect(try pid("time") == time, "the unchanged server kept its process")
            #expect(eventually(within: 8) { kill(Int32(fx), 0) == -1 }, "the server no agent names exited")
            #expect(try pid("fx") == nil)
        }

        @Test func aChangedServerIsReplacedOnReload() throws {
            try MCPVenv.require()
            let write = { (harness: DaemonHarness, zone: String) in
                harness.directory.write(
                    "agentd.yaml",
                    """
                    mcp_servers:
                      time:
                        command: [\(MCPVenv.path)/bin/mcp-server-time, --local-timezone, \(zone)]
                    """)
            }
            let agent = """
                model: mistral-small-latest
                socket: {mode: "0666"}
                mcp_servers: [time]
                """
            let harness = try DaemonHarness(agents: ["a.yaml": agent])
            write(harness, "UTC")
            try harness.start()
            func time() throws -> JSONValue? {
                try harness.control(["id": 1, "command": "status"])["status"]?["mcp_servers"]?.arrayValue?.first
            }
            let before = try #require(try time()?["pid"]?.intValue)
            write(harness, "Europe/Paris")
            _ = try harness.reload()
            let after = try #require(try time())
            #expect(after["state"] == "ready")
            #expect(after["pid"]?.intValue != before)
            #expect(eventually(within: 8) { kill(Int32(before), 0) == -1 }, "the old process exited")
        }

        private func results(_ events: [JSONValue]) -> [JSONValue] {
            events.filter { $0["type"] == "tool_result" }.compactMap { $0["tool_result"] }
        }
    }
}
