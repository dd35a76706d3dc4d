import Foundation
import JSON
import LLM
import Testing

@testable import AgentCore

/// One expected diagnostic of a fixture in Fixtures/bad.
struct BadFile: Sendable, CustomTestStringConvertible {
    var file: String
    var line: Int
    var column: Int
    var message: String

    init(_ file: String, _ line: Int, _ column: Int, _ message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    var testDescription: String { file }
}

enum Fixtures {
    static let directory = String(#filePath).split(separator: "/").dropLast().joined(separator: "/")
    static let root = "/" + directory + "/Fixtures"
    static let bad = root + "/bad"
    static let good = root + "/good"
    static let daemon = root + "/daemon"
    /// The repository's shipped agents.
    static let shippedAgents = "/" + directory.split(separator: "/").dropLast(2).joined(separator: "/") + "/agents.d"

    /// Every diagnostic each file in Fixtures/bad must produce, exactly.
    static let expected: [BadFile] = [
        BadFile(
            "Bad_Name.yaml", 1, 1,
            "agent name 'Bad_Name' (the file name without its extension) must match ^[a-z0-9][a-z0-9_-]{0,62}$"),
        BadFile(
            "agent-completions-temperature.yaml", 4, 1,
            "'temperature' is not available with agent_api: completions (Mistral's agents completion request has no temperature or top_p); use agent_api: conversations"
        ),
        BadFile("agent-model-and-id.yaml", 3, 1, "'model' and 'agent_id' both given; in agent mode give only agent_id"),
        BadFile("bad-mode.yaml", 1, 7, "mode: must be one of normal, agent, got 'agnet' (did you mean 'agent'?)"),
        BadFile(
            "bad-mode.yaml", 3, 18,
            "response_format: expected text, json_object or {json_schema: {name, schema, strict}}, got the string \"yaml\""
        ),
        BadFile("bad-mode.yaml", 4, 21, "system[1]: expected a string, got a number"),
        BadFile("agent-missing-id.yaml", 1, 1, "missing 'agent_id' (required in agent mode)"),
        BadFile("agent-temperature-range.yaml", 3, 14, "temperature: must be between 0 and 1 in agent mode, got 1.2"),
        BadFile(
            "agent-tool-choice-name.yaml", 3, 14,
            "tool_choice: {name: search} needs a tool defined in `tools`, which agent mode does not have; use auto, none, any or required"
        ),
        BadFile(
            "agent-tools.yaml", 3, 24,
            "tools[0].description: is only valid in normal mode: in agent mode the Mistral agent declares its functions, and a tool entry only implements one with exec"
        ),
        BadFile(
            "agent-tools.yaml", 3, 73,
            "tools[1]: needs 'exec' in agent mode, to implement the function the Mistral agent declares"),
        BadFile(
            "bad-exec.yaml", 4, 11, "tools[0]: exec executable \"df\" is not an absolute path (no PATH search is done)"),
        BadFile("bad-exec.yaml", 6, 11, "tools[1]: exec executable \"/usr/bin/no-such-tool-here\" does not exist"),
        BadFile("bad-exec.yaml", 9, 31, "tools[2]: exec[2] \"{mode}\" names no property of parameters"),
        BadFile("bad-exec.yaml", 12, 10, "tools[3]: env name \"BAD-NAME\" does not match ^[A-Za-z_][A-Za-z0-9_]*$"),
        BadFile(
            "bad-exec.yaml", 13, 17, "tools[3]: max_output 33554432 bytes is over the limit of 16777216 bytes (16MiB)"),
        BadFile("bad-exec.yaml", 15, 5, "tools[4]: 'timeout' only applies to a tool with 'exec'"),
        BadFile("agent-tools.yaml", 4, 1, "'safe_prompt' is only valid in normal mode"),
        BadFile(
            "alias-bomb.yaml", 6, 8,
            "aliases expand to more than 10000 nodes; refusing a possible \"billion laughs\" document"),
        BadFile(
            "bad-response-format.yaml", 6, 13,
            "response_format.json_schema.strict: expected true or false, got the string \"yes\""),
        BadFile("bad-tools.yaml", 3, 11, "tools[0].name: 'get order' must match ^[a-zA-Z0-9_-]{1,64}$"),
        BadFile("bad-tools.yaml", 5, 17, "tools[1].parameters: must be a JSON Schema object with `type: object`"),
        BadFile("bad-tools.yaml", 6, 11, "tools[2].name: duplicate tool name 'lookup' (first at 4:11)"),
        BadFile("bad-tools.yaml", 8, 5, "unknown key 'paramters' in tools[3] (did you mean 'parameters'?)"),
        BadFile("bad-tools.yaml", 9, 21, "tool_choice.name: names no defined tool 'missing_tool' (defined: fetch)"),
        BadFile("bad-sessions.yaml", 2, 17, "sessions.ttl: expected a duration such as 30s, 2m or 24h, got a number"),
        BadFile("bad-sessions.yaml", 2, 35, "sessions.max_messages: must be between 1 and 100000, got 0"),
        BadFile("bad-sessions.yaml", 2, 49, "sessions.max_bytes: unknown unit 'TB' in '2TB'; use B, KiB, MiB or GiB"),
        BadFile("bad-sessions.yaml", 2, 54, "sessions.max_sessions: is daemon-wide; set it in agentd.yaml"),
        BadFile(
            "conversations-parallel.yaml", 3, 1,
            "'parallel_tool_calls' is not available with agent_api: conversations (Mistral's completion_args have no parallel_tool_calls); use agent_api: completions"
        ),
        BadFile("duplicate-key.yaml", 4, 1, "duplicate key 'temperature' (first at 2:1)"),
        BadFile("empty.yaml", 1, 1, "empty file: expected a mapping with at least `model` or `agent_id`"),
        BadFile("invalid-utf8.yaml", 2, 17, "invalid UTF-8 (byte 0xE9)"),
        BadFile("many-errors.yaml", 2, 14, "temperature: must be between 0 and 1.5, got 3"),
        BadFile("many-errors.yaml", 3, 8, "top_p: must be greater than 0 and at most 1, got 0"),
        BadFile("many-errors.yaml", 4, 13, "stop[1]: expected a non-empty string, got 7"),
        BadFile("many-errors.yaml", 5, 1, "unknown key 'safe_promt' (did you mean 'safe_prompt'?)"),
        BadFile("many-errors.yaml", 7, 12, "limits.timeout: unknown unit 'h' in '2h'; use ms, s or m"),
        BadFile("many-errors.yaml", 8, 10, "limits.queue: must be between 0 and 100000, got -1"),
        BadFile(
            "many-errors.yaml", 9, 16,
            "socket.mode: expected an octal mode string such as \"0660\", got a number (a plain 0660 is read as a number; write it quoted: \"0660\")"
        ),
        BadFile("many-errors.yaml", 10, 19, "retry.attempts: must be between 1 and 10, got 0"),
        BadFile("missing-group.yaml", 2, 31, "socket.group: group 'no-such-group-agentd' does not exist"),
        BadFile("missing-group.yaml", 3, 23, "allow.users: user 'no-such-user-agentd' does not exist"),
        BadFile(
            "normal-agent-id-model.yaml", 1, 8,
            "model: 'ag_0684fe0e0b98773e8000323fc71a3986' is a Mistral agent id; add `mode: agent` to use it"),
        BadFile("normal-agent-only.yaml", 2, 1, "'agent_api' is only valid in agent mode (add `mode: agent`)"),
        BadFile("normal-missing-model.yaml", 1, 1, "missing 'model' (required in normal mode)"),
        BadFile("not-a-mapping.yaml", 1, 1, "expected a mapping of settings, got a list"),
        BadFile(
            "other-mode.yaml", 3, 1,
            "'system' is only valid in normal mode: in agent mode the Mistral agent owns its instructions"),
        BadFile("out-of-range.yaml", 2, 14, "temperature: must be between 0 and 1.5, got 2"),
        BadFile("tab-indentation.yaml", 4, 1, "tab character in indentation; YAML indents with spaces only"),
        BadFile("two-documents.yaml", 2, 1, "a second YAML document; a file holds exactly one"),
        BadFile("unknown-key.yaml", 2, 1, "unknown key 'temprature' (did you mean 'temperature'?)"),
        BadFile("wrong-type.yaml", 2, 13, "max_tokens: expected an integer, got the string \"lots\""),
        BadFile(
            "reasoning-options.yaml", 3, 19,
            "reasoning_effort: expected one of none, minimal, low, medium, high, xhigh, got the string \"maximal\""),
        BadFile("reasoning-options.yaml", 4, 1, "'prompt_mode' is only valid in normal mode"),
        BadFile("reasoning-options.yaml", 5, 12, "reasoning: must be one of stream, hide, got 'show'"),
        BadFile(
            "reasoning-options.yaml", 6, 1,
            "unknown key 'prompt_cache_key'"),
    ]

    static var badFiles: [String] { Array(Set(expected.map(\.file))).sorted() }
}

/// A fresh directory under the temp dir, removed by the caller.
func makeTemporaryDirectory() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("agentcore-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func write(_ text: String, to path: String) throws {
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
}

@Suite("Bad agent files")
struct BadAgentFileTests {
    @Test("each bad fixture reports exactly its diagnostics at file:line:column", arguments: Fixtures.badFiles)
    func badFixture(_ name: String) throws {
        let path = Fixtures.bad + "/" + name
        let expected = Fixtures.expected.filter { $0.file == name }.map {
            Diagnostic(file: path, line: $0.line, column: $0.column, message: $0.message)
        }
        let result = AgentLoader.loadFile(path)
        guard case .failure(let list) = result else {
            Issue.record("\(name) loaded but should fail")
            return
        }
        #expect(list.diagnostics == expected)
    }

    @Test("a bad directory reports every file and still loads nothing bad")
    func badDirectory() throws {
        let directory = try AgentLoader.loadDirectory(Fixtures.bad)
        #expect(directory.agents.isEmpty)
        #expect(Set(directory.failures.keys.map(AgentLoader.basename)) == Set(Fixtures.badFiles))
        #expect(directory.diagnostics.count == Fixtures.expected.count)
        #expect(directory.diagnostics == directory.diagnostics.sorted(by: Diagnostic.byPosition))
    }

    @Test("a file over 1 MiB is refused before parsing")
    func hugeFile() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/huge.yaml"
        var text = "model: mistral-small-latest\ndescription: |\n"
        let line = "  " + String(repeating: "x", count: 100) + "\n"
        text += String(repeating: line, count: (ConfigFile.maxBytes / line.utf8.count) + 10)
        try write(text, to: path)
        let clock = ContinuousClock()
        var result: Result<AgentDefinition, DiagnosticList>?
        let elapsed = clock.measure { result = AgentLoader.loadFile(path) }
        guard case .failure(let list)? = result else {
            Issue.record("a huge file loaded")
            return
        }
        #expect(list.diagnostics.count == 1)
        #expect(list.diagnostics.first?.line == 1 && list.diagnostics.first?.column == 1)
        #expect(
            list.diagnostics.first?.message.hasPrefix("file is larger than 1 MiB (\(text.utf8.count) bytes)") == true)
        #expect(elapsed < .seconds(5))
    }

    @Test("a missing or unreadable file is a diagnostic, not a crash")
    func unreadable() throws {
        let missing = AgentLoader.loadFile("/nonexistent/agentd/x.yaml")
        #expect(
            missing
                == .failure(
                    DiagnosticList([
                        Diagnostic(
                            file: "/nonexistent/agentd/x.yaml", line: 1, column: 1,
                            message: "cannot open file: No such file or directory")
                    ])))
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory + "/dir.yaml", withIntermediateDirectories: false)
        guard case .failure(let list) = AgentLoader.loadFile(directory + "/dir.yaml") else {
            Issue.record("a directory loaded as an agent")
            return
        }
        #expect(list.diagnostics.first?.message == "is a directory, expected a YAML file")
        #expect(throws: Diagnostic.self) { try AgentLoader.loadDirectory(directory + "/nope") }
    }

    @Test("two files naming one agent are both errors, other files still load")
    func duplicateNames() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try write("model: mistral-small-latest\n", to: directory + "/support.yaml")
        try write("model: mistral-large-latest\n", to: directory + "/support.yml")
        try write("model: open-mistral-nemo\n", to: directory + "/other.yaml")
        try write("temprature: 1\n", to: directory + "/broken.yaml")
        let result = try AgentLoader.loadDirectory(directory)
        #expect(result.agents.map(\.name) == ["other"])
        #expect(
            result.failures[directory + "/support.yaml"]?.first?.message
                == "agent 'support' is also defined by support.yml; each agent needs exactly one file")
        #expect(
            result.failures[directory + "/support.yml"]?.first?.message
                == "agent 'support' is also defined by support.yaml; each agent needs exactly one file")
        #expect(result.failures[directory + "/broken.yaml"]?.count == 2)
    }

    @Test("dotfiles, other extensions and subdirectories are ignored; symlinks are followed")
    func directoryFiltering() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try write("model: mistral-small-latest\n", to: directory + "/.hidden.yaml")
        try write("not yaml at all: [", to: directory + "/notes.txt")
        try write("model: mistral-small-latest\n", to: directory + "/real.yaml.bak")
        try FileManager.default.createDirectory(atPath: directory + "/sub", withIntermediateDirectories: false)
        try write("model: mistral-small-latest\n", to: directory + "/sub/target.yaml")
        try FileManager.default.createSymbolicLink(
            atPath: directory + "/linked.yaml", withDestinationPath: directory + "/sub/target.yaml")
        let result = try AgentLoader.loadDirectory(directory)
        #expect(result.agents.map(\.name) == ["linked"])
        #expect(result.failures.isEmpty)
    }
}
