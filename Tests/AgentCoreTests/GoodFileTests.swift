import Foundation
import JSON
import LLM
import Sessions
import Testing
import Tools
import YAML

@testable import AgentCore

@Suite("Good agent files")
struct GoodAgentFileTests {
    private func load(_ path: String) throws -> AgentDefinition {
        switch AgentLoader.loadFile(path) {
        case .success(let agent): return agent
        case .failure(let list):
            Issue.record("\(path) failed:\n\(list)")
            throw list
        }
    }

    @Test("every key of a normal agent lands in the definition")
    func everyKey() throws {
        let agent = try load(Fixtures.good + "/every-key.yaml")
        #expect(agent.name == "every-key")
        #expect(agent.description == "Answers customer questions")
        #expect(agent.mode == .normal)
        #expect(agent.upstream == .chatCompletions(model: "mistral-small-latest"))
        #expect(agent.modelOrAgentID == "mistral-small-latest")
        #expect(agent.system == ["You are a concise support assistant.", "Answer in English."])
        let schema: JSONValue = [
            "type": "object",
            "properties": ["order_id": ["type": "string"], "verbose": ["type": "boolean", "default": false]],
            "required": ["order_id"],
        ]
        #expect(
            agent.tools == [
                ToolSpec(name: "get_order_status", description: "Look up an order by id", parameters: schema),
                ToolSpec(name: "ping", parameters: ["type": "object", "properties": [:]]),
            ])
        let responseSchema: JSONValue = ["type": "object", "properties": ["answer": ["type": "string"]]]
        #expect(
            agent.options
                == GenerationOptions(
                    temperature: 0.7, topP: 0.9, maxTokens: 1024, randomSeed: 42, stop: ["\n\n", "END"],
                    presencePenalty: -0.5, frequencyPenalty: 1.5, safePrompt: false,
                    responseFormat: .jsonSchema(
                        name: "reply", schema: responseSchema, strict: true, description: "The reply object"),
                    toolChoice: .function(name: "get_order_status"), parallelToolCalls: false))
        #expect(agent.socket == SocketSettings(path: "/run/agentd/custom/support.sock", mode: 0o640, group: "root"))
        #expect(agent.allow == AccessList(users: ["root"], groups: ["root"]))
        var limits = Limits()
        limits.maxConcurrent = 4
        limits.queue = 0
        limits.timeouts = Timeouts(total: .seconds(120), firstByte: .milliseconds(500), idle: .seconds(45))
        limits.maxRequestBytes = 4096
        #expect(agent.limits == limits)
        #expect(agent.retry == RetryPolicy(attempts: 5, baseDelay: .milliseconds(100), maxDelay: .seconds(3)))
        #expect(agent.sessions == SessionOverrides(ttl: .seconds(7200), maxMessages: 40, maxBytes: 1 << 20))
        let sessionLimits = agent.sessions.applied(to: SessionLimits(maxSessions: 7))
        #expect(sessionLimits == SessionLimits(ttl: .seconds(7200), maxMessages: 40, maxBytes: 1 << 20, maxSessions: 7))
    }

    @Test("agent mode with the completions API and `model: ag:...` as the id")
    func agentCompletions() throws {
        let agent = try load(Fixtures.good + "/agent-completions.yaml")
        #expect(agent.mode == .agent)
        #expect(agent.upstream == .agentCompletions(agentID: "ag:3996db2b:20240805:french-agent:a8997aab"))
        #expect(
            agent.options
                == GenerationOptions(
                    maxTokens: 300, stop: ["END"], responseFormat: .jsonObject, toolChoice: .any,
                    parallelToolCalls: true))
        #expect(agent.system.isEmpty && agent.tools.isEmpty)
    }

    @Test("server tools: exec and its settings; client tools beside them")
    func serverTools() throws {
        let agent = try load(Fixtures.good + "/server-tools.yaml")
        #expect(agent.maxSteps == 4)
        #expect(agent.tools.map(\.name) == ["disk_free", "ask_user"], "both schemas go to the model")
        #expect(
            agent.execTools == [
                "disk_free": ExecTool(
                    argv: ["/usr/bin/df", "--output=avail", "-h", "{path}"], timeout: .seconds(10), maxOutput: 65536,
                    env: ["LANG": "C.UTF-8"], cwd: "/tmp")
            ])
        let implementing = try load(Fixtures.good + "/agent-server-tools.yaml")
        #expect(implementing.tools.isEmpty, "the Mistral agent declares its functions")
        #expect(implementing.execTools == ["uptime": ExecTool(argv: ["/usr/bin/uptime"], maxOutput: 4096)])
        #expect(implementing.maxSteps == AgentDefinition.defaultMaxSteps)
    }

    @Test("reasoning options and `reasoning: hide`")
    func reasoner() throws {
        let agent = try load(Fixtures.good + "/reasoner.yaml")
        #expect(agent.options.reasoningEffort == .high)
        #expect(agent.options.promptMode == "reasoning")
        #expect(agent.options.responseFormat == .jsonObject)
        #expect(agent.reasoning == .hide)
        #expect(try load(Fixtures.good + "/minimal.yml").reasoning == .stream)
    }

    @Test("defaults of an almost empty file; .yml is accepted")
    func defaults() throws {
        let agent = try load(Fixtures.good + "/minimal.yml")
        #expect(agent.name == "minimal")
        #expect(agent.system == ["Be brief."])
        #expect(agent.options == GenerationOptions())
        #expect(agent.socket == SocketSettings(path: nil, mode: 0o660, group: nil))
        #expect(agent.allow == nil)
        #expect(agent.limits == Limits())
        #expect(
            agent.limits.maxConcurrent == 16 && agent.limits.queue == 64 && agent.limits.maxRequestBytes == 1_048_576)
        #expect(agent.retry == RetryPolicy())
        #expect(agent.sessions == SessionOverrides())
    }

    @Test("agent mode defaults to the conversations API")
    func conversationsDefault() throws {
        let result = AgentLoader.definition(
            from: try YAMLParser.parse("mode: agent\nagent_id: ag_0684fe0e0b98773e8000323fc71a3986\ntemperature: 1\n"),
            file: "x.yaml", name: "x")
        let agent = try result.get()
        #expect(agent.upstream == .conversations(agentID: "ag_0684fe0e0b98773e8000323fc71a3986"))
        #expect(agent.options.temperature == 1)
    }

    @Test("every file shipped in agents.d loads cleanly")
    func shippedAgents() throws {
        let directory = try AgentLoader.loadDirectory(Fixtures.shippedAgents)
        #expect(directory.diagnostics.isEmpty, "\(DiagnosticList(directory.diagnostics))")
        let names = directory.agents.map(\.name)
        #expect(names.contains("support") && names.contains("orders") && names.contains("researcher"))
        let researcher = directory.agents.first { $0.name == "researcher" }
        #expect(researcher?.upstream == .conversations(agentID: "ag_0684fe0e0b98773e8000323fc71a3986"))
        #expect(directory.agents.first { $0.name == "orders" }?.tools.map(\.name).contains("get_order_status") == true)
    }
}

@Suite("Value formats")
struct ValueFormatTests {
    @Test("durations take ms, s and m")
    func durations() throws {
        #expect(try ConfigValues.duration("500ms").get() == .milliseconds(500))
        #expect(try ConfigValues.duration("30s").get() == .seconds(30))
        #expect(try ConfigValues.duration("2m").get() == .seconds(120))
        for bad in ["", "30", "2h", "1.5s", "-1s", "0s", "s", " 30s"] {
            #expect(throws: OptionProblem.self, "\(bad)") { try ConfigValues.duration(bad).get() }
        }
        #expect(try ConfigValues.duration("24h", hours: true).get() == .seconds(86400))
        #expect(throws: OptionProblem.self) { try ConfigValues.duration("1d", hours: true).get() }
    }

    @Test("sizes are bytes or binary units")
    func byteSizes() throws {
        #expect(try ConfigValues.byteSize("4096").get() == 4096)
        #expect(try ConfigValues.byteSize("64KiB").get() == 65536)
        #expect(try ConfigValues.byteSize("1MiB").get() == 1 << 20)
        #expect(try ConfigValues.byteSize("2GiB").get() == 2 << 30)
        for bad in ["", "1MB", "1.5MiB", "-1", "KiB", "99999999999999999999GiB"] {
            #expect(throws: OptionProblem.self, "\(bad)") { try ConfigValues.byteSize(bad).get() }
        }
    }

    @Test("modes are octal strings within 0777")
    func octalModes() throws {
        #expect(try ConfigValues.octalMode("0660").get() == 0o660)
        #expect(try ConfigValues.octalMode("600").get() == 0o600)
        #expect(try ConfigValues.octalMode("0o640").get() == 0o640)
        for bad in ["", "66", "0668", "4755", "rw-rw----", "00660"] {
            #expect(throws: OptionProblem.self, "\(bad)") { try ConfigValues.octalMode(bad).get() }
        }
    }

    @Test("names follow the file-stem pattern")
    func names() {
        #expect(AgentLoader.isValidName("support"))
        #expect(AgentLoader.isValidName("0-a_b"))
        #expect(AgentLoader.isValidName(String(repeating: "a", count: 63)))
        #expect(!AgentLoader.isValidName(String(repeating: "a", count: 64)))
        #expect(!AgentLoader.isValidName("_support"))
        #expect(!AgentLoader.isValidName("Support"))
        #expect(!AgentLoader.isValidName("sup port"))
        #expect(!AgentLoader.isValidName(""))
        #expect(AgentLoader.stem(of: "/etc/agentd/agents.d/support.yaml") == "support")
        #expect(AgentLoader.stem(of: "a.b.yml") == "a.b")
    }

    @Test("hints find near misses only")
    func hints() {
        #expect(Hints.nearest(to: "temprature", among: OptionRules.keys) == "temperature")
        #expect(Hints.nearest(to: "top-p", among: OptionRules.keys) == "top_p")
        #expect(Hints.nearest(to: "maxtokens", among: OptionRules.keys) == "max_tokens")
        #expect(Hints.nearest(to: "colour", among: OptionRules.keys) == nil)
    }
}
