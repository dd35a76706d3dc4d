import Foundation
import Glibc
import JSON
import TestSupport
import Testing

/// CONTRACT §7 end to end: the agentctl binary, with and without a running agentd.
@Suite(.blocksItsThread) enum AgentctlTests {}

/// One finished run of the agentctl binary.
struct AgentctlRun: CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String

    var description: String { "exit \(status)\nstdout:\n\(stdout)\nstderr:\n\(stderr)" }

    /// stdout's lines, parsed as JSON.
    func jsonLines() throws -> [JSONValue] {
        try stdout.split(separator: "\n").map { try JSONParser.parse(String($0)) }
    }
}

/// Runs `agentctl` to completion with `stdin` as its standard input; AGENTD_SOCKET_DIR and
/// NO_COLOR come only from `environment`.
func runAgentctl(_ arguments: [String], stdin: String? = nil, environment: [String: String] = [:]) throws -> AgentctlRun
{
    let directory = TemporaryDirectory()
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "\(productsDirectory)/agentctl")
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env.removeValue(forKey: "AGENTD_SOCKET_DIR")
    env.removeValue(forKey: "NO_COLOR")
    process.environment = env.merging(environment) { $1 }
    let stdoutPath = "\(directory.path)/out"
    let stderrPath = "\(directory.path)/err"
    _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
    _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
    process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
    process.standardError = FileHandle(forWritingAtPath: stderrPath)
    let input = Pipe()
    process.standardInput = stdin == nil ? FileHandle.nullDevice : input
    try process.run()
    if let stdin {
        input.fileHandleForWriting.write(Data(stdin.utf8))
        try input.fileHandleForWriting.close()
    }
    guard eventually(within: 60, { !process.isRunning }) else {
        kill(process.processIdentifier, SIGKILL)
        throw TestFailure("agentctl \(arguments) did not exit")
    }
    return AgentctlRun(
        status: process.terminationStatus,
        stdout: (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "")
}

extension AgentctlTests {
    /// agentctl against a running agentd.
    @Suite(.serialized) struct WithDaemon {
        let harness: DaemonHarness

        init() throws {
            harness = try DaemonHarness(agents: [
                "chat.yaml": Agents.chat, "tools.yaml": Agents.tools, "helper.yml": Agents.agentMode,
                "patient.yaml": Agents.chat.replacingOccurrences(of: "idle_timeout: 2s", with: "idle_timeout: 60s")
                    .replacingOccurrences(of: "timeout: 10s", with: "timeout: 90s"),
            ])
            try harness.start()
        }

        private func agentctl(_ arguments: [String], stdin: String? = nil) throws -> AgentctlRun {
            try runAgentctl(["--socket-dir", harness.socketDir] + arguments, stdin: stdin)
        }

        @Test func listPrintsAnAlignedTableOfTheAgents() throws {
            let run = try runAgentctl(["list", "--socket-dir", harness.socketDir])
            #expect(run.status == 0, "\(run)")
            let lines = run.stdout.split(separator: "\n").map(String.init)
            let header = try #require(lines.first)
            #expect(header.hasPrefix("NAME"))
            for column in ["MODE", "MODEL/AGENT_ID", "STATE", "SOCKET", "DESCRIPTION"] {
                #expect(header.contains(column))
            }
            let chat = try #require(lines.first { $0.hasPrefix("chat ") })
            #expect(chat.contains("normal"))
            #expect(chat.contains("mistral-small-latest"))
            #expect(chat.contains(harness.socketPath("chat")))
            #expect(chat.hasSuffix("Test chat agent"))
            let helper = try #require(lines.first { $0.hasPrefix("helper ") })
            #expect(helper.contains("ag_0684fe0e0b98773e8000323fc71a3986"))
            // Aligned: every row's MODEL/AGENT_ID column starts where the header's does.
            let column = try #require(header.range(of: "MODEL/AGENT_ID")).lowerBound.utf16Offset(in: header)
            let modelStart = try #require(chat.range(of: "mistral-small-latest")).lowerBound.utf16Offset(in: chat)
            #expect(modelStart == column)
            #expect(!run.stdout.contains("\u{1B}["), "no colour when stdout is not a terminal")
        }

        @Test func listJSONIsTheDaemonsResult() throws {
            let run = try agentctl(["list", "--json"])
            #expect(run.status == 0, "\(run)")
            let result = try #require(try run.jsonLines().first)
            #expect(result["type"] == "result")
            let names = Set(result["agents"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? [])
            #expect(names == ["chat", "tools", "helper", "patient"])
        }

        @Test func statusSummarisesTheDaemon() throws {
            _ = try agentctl(["chat", "chat", "count me"])
            let run = try agentctl(["status"])
            #expect(run.status == 0, "\(run)")
            let pid = try #require(harness.daemon?.pid)
            #expect(run.stdout.contains("pid \(pid)"))
            #expect(run.stdout.contains("agentd "))
            let header = try #require(run.stdout.split(separator: "\n").first { $0.hasPrefix("AGENT ") })
            #expect(header.contains("REQUESTS"))
            let chat = try #require(run.stdout.split(separator: "\n").first { $0.hasPrefix("chat ") })
            #expect(
                chat.split(separator: " ", omittingEmptySubsequences: true).dropFirst(2).first == "1",
                "one request counted")
            #expect(run.stdout.contains("last reload:"))

            let json = try agentctl(["status", "--json"])
            #expect(json.status == 0, "\(json)")
            #expect(try json.jsonLines().first?["status"]?["pid"]?.intValue == Int64(pid))
        }

        @Test func reloadReportsAnAddedAgent() throws {
            harness.directory.write("agents.d/extra.yaml", Agents.chat)
            let run = try agentctl(["reload"])
            #expect(run.status == 0, "\(run)")
            #expect(run.stdout.contains("added: extra"))
            #expect(run.stdout.contains("unchanged: "))
            #expect(try agentctl(["list"]).stdout.contains(harness.socketPath("extra")))
        }

        @Test func reloadWithABrokenFileExitsOneAndPrintsItsDiagnostic() throws {
            harness.directory.write("agents.d/broken.yaml", "model: mistral-small-latest\ntemperature: 9\n")
            let run = try agentctl(["reload"])
            #expect(run.status == 1, "\(run)")
            #expect(run.stderr.contains("broken.yaml:2:"), "\(run)")
            #expect(run.stderr.contains(": error: "))

            let json = try agentctl(["reload", "--json"])
            #expect(json.status == 1, "\(json)")
            let errors = try #require(try json.jsonLines().first?["reload"]?["errors"]?.arrayValue)
            #expect(errors.count == 1)
            #expect(errors.first?["line"] == 2)
        }

        @Test func chatPrintsTheStreamedReply() throws {
            let run = try agentctl(["chat", "chat", "hi"])
            #expect(run.status == 0, "\(run)")
            #expect(run.stdout == "Echo: hi\n")
            #expect(run.stderr.isEmpty)
        }

        @Test func chatReadsTheWholeOfStandardInputWithoutText() throws {
            let run = try agentctl(["chat", "chat"], stdin: "hi from\nstdin\n")
            #expect(run.status == 0, "\(run)")
            #expect(run.stdout == "Echo: hi from stdin\n")
        }

        @Test func chatWithoutStreamingAsksForStreamFalse() throws {
            let run = try agentctl(["chat", "chat", "--no-stream", "quiet"])
            #expect(run.status == 0, "\(run)")
            #expect(run.stdout == "Echo: quiet\n")
            let json = try agentctl(["chat", "chat", "--no-stream", "--json", "quiet"])
            let events = try json.jsonLines()
            #expect(events.map { $0["type"] } == ["done"], "stream:false sends only the terminal event")
        }

        @Test func chatJSONPrintsEveryEventLine() throws {
            let run = try agentctl(["chat", "--json", "chat", "hello there"])
            #expect(run.status == 0, "\(run)")
            let events = try run.jsonLines()
            #expect(events.first?["type"] == "start")
            #expect(events.first?["agent"] == "chat")
            #expect(events.filter { $0["type"] == "delta" }.count >= 2)
            #expect(events.last?["type"] == "done")
            #expect(events.last?["text"] == "Echo: hello there")
        }

        @Test func chatWritesEachDeltaAsItArrives() throws {
            // The upstream sends its first chunk, then stalls: the text must be on stdout while
            // the request is still open.
            let child = try ChildProcess(
                "\(productsDirectory)/agentctl",
                ["--socket-dir", harness.socketDir, "chat", "patient", "[fault:stall] hello"],
                logDirectory: harness.directory.path)
            let arrived = eventually(within: 30) { !child.stdout.isEmpty }
            #expect(arrived, "no text on stdout: \(child.stderr)")
            #expect(child.process.isRunning, "the reply had ended: \(child.stdout)")
            #expect(child.stdout == "Echo: ")
            // Ends even though the test runner hands its children a blocked SIGTERM.
            child.signal(SIGTERM)
            #expect(child.waitForExit(within: 10) != nil)
        }

        @Test func aDaemonThatDiesMidReplyFailsTheChat() throws {
            let child = try ChildProcess(
                "\(productsDirectory)/agentctl",
                ["--socket-dir", harness.socketDir, "chat", "patient", "[fault:stall] hello"],
                logDirectory: harness.directory.path)
            #expect(eventually(within: 30) { !child.stdout.isEmpty }, "no text on stdout: \(child.stderr)")
            harness.daemon?.signal(SIGKILL)
            #expect(child.waitForExit(within: 20) == 1)
            #expect(child.stdout == "Echo: \n", "the partial reply ends its line")
            #expect(child.stderr.contains("closed the connection"), "\(child.stderr)")
        }

        @Test func chatOptionsAreSentAndValidatedByTheDaemon() throws {
            let accepted = try agentctl(["chat", "chat", "--option", "temperature=0.2", "--option", "stop=END", "hi"])
            #expect(accepted.status == 0, "\(accepted)")
            #expect(accepted.stdout == "Echo: hi\n")

            let rejected = try agentctl(["chat", "chat", "--option", "temperature=9", "hi"])
            #expect(rejected.status == 1, "\(rejected)")
            #expect(rejected.stderr.hasPrefix("agentctl: bad_request: "))
            #expect(rejected.stderr.contains("temperature"))
            #expect(rejected.stdout.isEmpty)
        }

        @Test func chatPrintsToolCallsToStandardError() throws {
            let run = try agentctl(["chat", "tools", "[tool:get_order_status] where is 42"])
            #expect(run.status == 0, "\(run)")
            #expect(run.stderr.contains("get_order_status("), "\(run)")
        }

        @Test func chatToAnUnknownAgentFails() throws {
            let run = try agentctl(["chat", "nobody", "hi"])
            #expect(run.status == 1, "\(run)")
            #expect(run.stderr.hasPrefix("agentctl: unknown_agent: "))
        }

        @Test func chatTalksToAnAgentSocketDirectly() throws {
            let run = try runAgentctl(["chat", "--socket", harness.socketPath("chat"), "chat", "direct"])
            #expect(run.status == 0, "\(run)")
            #expect(run.stdout == "Echo: direct\n")
        }

        @Test func shellCompletionOffersTheDaemonsAgentNames() throws {
            // What the generated bash script runs to complete `agentctl --socket-dir DIR chat <TAB>`.
            let run = try runAgentctl([
                "---completion", "chat", "--", "positional@0", "4", "0",
                "agentctl", "--socket-dir", harness.socketDir, "chat", "",
            ])
            #expect(run.status == 0, "\(run)")
            #expect(Set(run.stdout.split(separator: "\n")) == ["chat", "tools", "helper", "patient"])
        }

        @Test func theSocketDirectoryComesFromTheEnvironment() throws {
            let run = try runAgentctl(["list", "--json"], environment: ["AGENTD_SOCKET_DIR": harness.socketDir])
            #expect(run.status == 0, "\(run)")
        }
    }
}

extension AgentctlTests {
    /// agentctl without a daemon: exit codes, offline validation and completion scripts.
    @Suite struct Offline {
        @Test func anAbsentDaemonExits69NamingTheSocket() throws {
            let empty = TemporaryDirectory()
            for command in [["list"], ["status"], ["reload"], ["chat", "chat", "hi"]] {
                let run = try runAgentctl(["--socket-dir", empty.path] + command)
                #expect(run.status == 69, "\(command): \(run)")
                #expect(run.stderr.contains("\(empty.path)/control.sock"))
                #expect(run.stderr.contains("--socket-dir"))
                #expect(run.stderr.contains("AGENTD_SOCKET_DIR"))
            }
            let fromEnvironment = try runAgentctl(["status"], environment: ["AGENTD_SOCKET_DIR": empty.path])
            #expect(fromEnvironment.status == 69)
            #expect(fromEnvironment.stderr.contains("\(empty.path)/control.sock"))
        }

        @Test func aSocketNobodyListensOnExits69() throws {
            // A socket file left behind by a daemon that is gone: ECONNREFUSED.
            let directory = TemporaryDirectory()
            let path = "\(directory.path)/control.sock"
            try #require(makeStaleSocket(at: path))
            let run = try runAgentctl(["list", "--socket-dir", directory.path])
            #expect(run.status == 69, "\(run)")
            #expect(run.stderr.contains("\(path): Connection refused"))
        }

        @Test(arguments: [
            ["list", "--bogus"], ["chat"], ["frobnicate"], ["chat", "chat", "--option", "temperature", "hi"],
            ["chat", "chat", "--option", "a=1", "--option", "a=2", "hi"],
            ["chat", "chat"],  // no TEXT and nothing on standard input
        ])
        func usageErrorsExit64(arguments: [String]) throws {
            let run = try runAgentctl(arguments)
            #expect(run.status == 64, "\(run)")
            #expect(!run.stderr.isEmpty)
        }

        @Test func validateExits0ForGoodFilesAnd65ForBadOnes() throws {
            let directory = TemporaryDirectory()
            directory.write("good.yaml", Agents.chat)
            directory.write("bad.yaml", "model: mistral-small-latest\ntemperature: 9\n")
            let good = try runAgentctl(["validate", "\(directory.path)/good.yaml"])
            #expect(good.status == 0, "\(good)")
            #expect(good.stdout.contains("good.yaml: ok"))
            let bad = try runAgentctl(["validate", directory.path])
            #expect(bad.status == 65, "\(bad)")
            #expect(bad.stderr.contains("bad.yaml:2:"))
        }

        @Test(arguments: ["bash", "zsh", "fish"])
        func completionScriptsAreGenerated(shell: String) throws {
            let run = try runAgentctl(["--generate-completion-script", shell])
            #expect(run.status == 0, "\(run)")
            #expect(run.stdout.contains("agentctl"))
            #expect(run.stdout.contains("socket-dir"))
        }

        @Test func theCompletionsScriptWritesAllThreeShells() throws {
            let output = TemporaryDirectory()
            let script = Process()
            script.executableURL = URL(fileURLWithPath: "\(repositoryRoot)/scripts/generate-completions.sh")
            script.arguments = [output.path, "\(productsDirectory)/agentctl"]
            try script.run()
            script.waitUntilExit()
            #expect(script.terminationStatus == 0)
            for file in ["agentctl.bash", "_agentctl", "agentctl.fish"] {
                let contents = try String(contentsOfFile: "\(output.path)/\(file)", encoding: .utf8)
                #expect(contents.contains("agentctl"), "\(file)")
            }
        }
    }
}
