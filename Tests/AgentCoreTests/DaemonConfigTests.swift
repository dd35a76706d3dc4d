import Foundation
import JSON
import LLM
import Sessions
import Testing

@testable import AgentCore

@Suite("Daemon config")
struct DaemonConfigTests {
    @Test("an empty file and a missing default file mean the defaults")
    func defaults() throws {
        let empty = try DaemonConfig.load(path: "/dev/null", explicit: true).get()
        #expect(empty == DaemonConfig())
        #expect(empty.agentsDir == "/etc/agentd/agents.d")
        #expect(empty.socketDir == "/run/agentd")
        #expect(empty.socketGroup == nil)
        #expect(empty.controlSocket == SocketSettings(mode: 0o600))
        #expect(empty.mistralBaseURL == "https://api.mistral.ai")
        #expect(empty.apiKeyFile == nil)
        #expect(empty.maxConnections == 1024)
        #expect(empty.shutdownGrace == .seconds(30))
        #expect(empty.logLevel == .info)
        #expect(empty.logContent == false)
        #expect(empty.stateDir == "/var/lib/agentd")
        #expect(
            empty.sessions
                == SessionLimits(ttl: .seconds(86400), maxMessages: 200, maxBytes: 1 << 20, maxSessions: 10_000))
        let missingDefault = try DaemonConfig.load(path: "/nonexistent/agentd.yaml", explicit: false).get()
        #expect(missingDefault == DaemonConfig())
    }

    @Test("a missing --config file is an error")
    func missingExplicit() {
        let result = DaemonConfig.load(path: "/nonexistent/agentd.yaml", explicit: true)
        #expect(
            result
                == .failure(
                    DiagnosticList([
                        Diagnostic(
                            file: "/nonexistent/agentd.yaml", line: 1, column: 1,
                            message: "cannot open file: No such file or directory")
                    ])))
    }

    @Test("every key is read")
    func everyKey() throws {
        let config = try DaemonConfig.load(path: Fixtures.daemon + "/full.yaml", explicit: true).get()
        var expected = DaemonConfig()
        expected.agentsDir = "/srv/agents"
        expected.socketDir = "/run/agentd-test"
        expected.socketGroup = "root"
        expected.controlSocket = SocketSettings(mode: 0o660, group: "root")
        expected.mistralBaseURL = "http://127.0.0.1:8080"
        expected.apiKeyFile = "/etc/agentd/mistral-api-key"
        expected.maxConnections = 64
        expected.shutdownGrace = .milliseconds(1500)
        expected.logLevel = .debug
        expected.logContent = true
        expected.stateDir = "/srv/agentd-state"
        expected.sessions = SessionLimits(ttl: .seconds(12 * 3600), maxMessages: 50, maxBytes: 65536, maxSessions: 500)
        #expect(config == expected)
    }

    @Test("every problem of a bad config is reported at its position")
    func badConfig() {
        let file = Fixtures.daemon + "/bad.yaml"
        let expected = [
            (2, 15, "socket_group: group 'no-such-group-agentd' does not exist"),
            (
                3, 24,
                "control_socket.mode: expected an octal mode string such as \"0660\", got a number (a plain 600 is read as a number; write it quoted: \"0660\")"
            ),
            (5, 13, "mistral.base_url: expected an http:// or https:// URL, got 'api.mistral.ai'"),
            (6, 1, "unknown key 'max_conections' (did you mean 'max_connections'?)"),
            (7, 17, "shutdown_grace: expected a duration such as 500ms, 30s or 2m, got a number"),
            (8, 12, "log_level: must be one of debug, info, notice, warning, error, got 'verbose'"),
            (9, 17, "sessions.ttl: unknown unit 'd' in '1d'; use ms, s, m or h"),
            (9, 32, "sessions.max_bytes: must be between 1024 and 1073741824 bytes, got 3"),
            (9, 35, "unknown key 'max_session' in sessions (did you mean 'max_sessions'?)"),
        ].map { Diagnostic(file: file, line: $0.0, column: $0.1, message: $0.2) }
        #expect(DaemonConfig.load(path: file, explicit: true) == .failure(DiagnosticList(expected)))
    }

    @Test("YAML errors in the config are diagnostics too")
    func yamlError() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try write("log_level: info\nlog_level: debug\n", to: directory + "/agentd.yaml")
        let result = DaemonConfig.load(path: directory + "/agentd.yaml", explicit: true)
        #expect(
            result
                == .failure(
                    DiagnosticList([
                        Diagnostic(
                            file: directory + "/agentd.yaml", line: 2, column: 1,
                            message: "duplicate key 'log_level' (first at 1:1)")
                    ])))
    }
}

@Suite("Per-request options")
struct RequestOptionsTests {
    private let normal = AgentDefinition(
        name: "support", file: "support.yaml", mode: .normal, upstream: .chatCompletions(model: "mistral-small-latest"),
        tools: [ToolSpec(name: "get_order_status", parameters: ["type": "object"])])
    private let conversations = AgentDefinition(
        name: "r", file: "r.yaml", mode: .agent,
        upstream: .conversations(agentID: "ag_0684fe0e0b98773e8000323fc71a3986"))
    private let agentCompletions = AgentDefinition(
        name: "r", file: "r.yaml", mode: .agent, upstream: .agentCompletions(agentID: "ag:x"))

    private func failure(_ options: JSONValue, _ agent: AgentDefinition) -> String? {
        do {
            _ = try RequestOptions.parse(options, for: agent)
            return nil
        } catch {
            return error.description
        }
    }

    @Test("every per-request option is parsed")
    func valid() throws {
        let options = try RequestOptions.parse(
            [
                "temperature": 0.2, "top_p": 1, "max_tokens": 200, "random_seed": 3, "stop": "END",
                "tool_choice": ["name": "get_order_status"],
            ], for: normal)
        #expect(
            options
                == GenerationOptions(
                    temperature: 0.2, topP: 1, maxTokens: 200, randomSeed: 3, stop: ["END"],
                    toolChoice: .function(name: "get_order_status")))
        #expect(try RequestOptions.parse([:], for: normal) == GenerationOptions())
        #expect(
            try RequestOptions.parse(["tool_choice": "none", "stop": ["a", "b"]], for: conversations)
                == GenerationOptions(stop: ["a", "b"], toolChoice: ToolChoice.none))
        #expect(
            RequestOptions.keys == [
                "temperature", "top_p", "max_tokens", "random_seed", "stop", "response_format", "tool_choice",
                "reasoning_effort", "prompt_mode", "prediction", "prompt_cache_key", "max_steps",
            ])
    }

    @Test("errors name the field and follow the same rules as the YAML")
    func invalid() {
        #expect(failure(["temperature": 2], normal) == "options.temperature: must be between 0 and 1.5, got 2")
        #expect(
            failure(["temperature": 1.2], conversations)
                == "options.temperature: must be between 0 and 1 in agent mode, got 1.2")
        #expect(
            failure(["temperature": "hot"], normal) == "options.temperature: expected a number, got the string \"hot\"")
        #expect(failure(["top_p": 0], normal) == "options.top_p: must be greater than 0 and at most 1, got 0")
        #expect(failure(["max_tokens": 1.5], normal) == "options.max_tokens: expected an integer, got 1.5")
        #expect(failure(["stop": ["ok", 3]], normal) == "options.stop[1]: expected a non-empty string, got 3")
        #expect(
            failure(["tool_choice": ["name": "nope"]], normal)
                == "options.tool_choice.name: names no defined tool 'nope' (defined: get_order_status)")
        #expect(
            failure(["tool_choice": ["name": "x"]], conversations)?.hasPrefix(
                "options.tool_choice: {name: x} needs a tool") == true)
        #expect(
            failure(["temperature": 0.5], agentCompletions)?.hasPrefix(
                "options.temperature: is not available with agent_api: completions") == true)
        #expect(
            failure(["temprature": 0.5], normal)
                == "options.temprature: unknown option (did you mean 'temperature'?); allowed: temperature, top_p, max_tokens, random_seed, stop, response_format, tool_choice, reasoning_effort, prompt_mode, prediction, prompt_cache_key, max_steps"
        )
        #expect(
            failure(["presence_penalty": 0.5], normal)?.hasPrefix(
                "options.presence_penalty: is not a per-request option") == true)
        #expect(failure("fast", normal) == "options: expected an object, got the string \"fast\"")
        #expect(
            failure(["reasoning_effort": "max"], normal)
                == "options.reasoning_effort: expected one of none, minimal, low, medium, high, xhigh, got the string \"max\""
        )
        #expect(
            failure(["prompt_mode": "reasoning"], conversations) == "options.prompt_mode: is only valid in normal mode")
        #expect(
            failure(["prompt_cache_key": "k"], conversations)?.hasPrefix(
                "options.prompt_cache_key: is not available with agent_api: conversations") == true)
        #expect(
            failure(["prediction": ["type": "text"]], normal)?.hasPrefix("options.prediction: expected a string or")
                == true)
    }

    @Test("the 2026 options parse per request, in Mistral's shapes")
    func reasoningAndFriends() throws {
        #expect(
            try RequestOptions.parse(
                [
                    "reasoning_effort": "high", "prompt_mode": "reasoning",
                    "prediction": ["type": "content", "content": "x"],
                    "prompt_cache_key": "user-42", "response_format": "json_object",
                ], for: normal)
                == GenerationOptions(
                    responseFormat: .jsonObject, reasoningEffort: .high, promptMode: "reasoning", prediction: "x",
                    promptCacheKey: "user-42"))
        #expect(try RequestOptions.parse(["prediction": "draft"], for: normal).prediction == "draft")
        #expect(
            try RequestOptions.parse(["reasoning_effort": "none"], for: conversations).reasoningEffort
                == ReasoningEffort.none)
    }
}
