import AgentCore
import AgentProtocol
import AgentRunner
import JSON
import LLM
import Logging
import Testing
import Tools

/// The tool loop of CONTRACT §9 with a scripted model and real child processes.
@Suite struct ToolLoopTests {
    private let agent = AgentDefinition(
        name: "ops", file: "/agents.d/ops.yaml", mode: .normal, upstream: .chatCompletions(model: "m"),
        tools: [
            ToolSpec(name: "echo", parameters: ["type": "object", "properties": ["text": ["type": "string"]]]),
            ToolSpec(name: "nap", parameters: ["type": "object", "properties": [:]]),
            ToolSpec(name: "ask_user", parameters: ["type": "object", "properties": [:]]),
        ],
        execTools: [
            "echo": ExecTool(argv: ["/bin/echo", "{text}"]),
            "nap": ExecTool(argv: ["/bin/sleep", "300"]),
        ],
        maxSteps: 3)

    private func call(_ id: String, _ name: String, _ arguments: JSONValue = [:]) -> ToolCall {
        ToolCall(id: id, name: name, arguments: .string(arguments.jsonText))
    }

    private func reply(_ text: String, calls: [ToolCall] = []) -> Completion {
        Completion(
            text: text, toolCalls: calls, finishReason: calls.isEmpty ? "stop" : "tool_calls",
            usage: Usage(promptTokens: 10, completionTokens: 2, totalTokens: 12), model: "m")
    }

    private func turn(_ completion: Completion) -> [ScriptedLLM.Step] {
        [
            .batch(
                (completion.text.isEmpty ? [] : [LLMEvent.text(completion.text)])
                    + completion.toolCalls.map(LLMEvent.toolCall) + [.done(completion)])
        ]
    }

    private func run(_ request: ChatRequest, _ llm: ScriptedLLM, on definition: AgentDefinition? = nil)
        async -> (RequestReport, CollectingSink)
    {
        let logger = Logger(label: "test")
        let runner = RequestRunner(
            client: llm, tools: ServerTools(defaultWorkingDirectory: "/", logger: logger, logContent: false),
            logger: logger, logContent: false)
        let sink = CollectingSink()
        let report = await runner.run(
            request, on: definition ?? agent, admission: FreeSlot(), handle: RequestHandle(), peer: nil, sink: sink,
            beforeTerminal: { _ in })
        return (report, sink)
    }

    @Test func aServerToolRunsAndItsResultGoesBackToTheModel() async throws {
        let llm = ScriptedLLM(calls: [
            turn(reply("", calls: [call("c1", "echo", ["text": "hello; rm -rf /"])])), turn(reply("Done.")),
        ])
        let (report, sink) = await run(
            ChatRequest(id: .int(1), messages: [ChatMessage(role: .user, content: "go")]), llm)
        #expect(sink.types == ["start", "tool_call", "tool_result", "delta", "done"])
        let events = Array(sink.sent.joined())
        let result = try #require(events[2]["tool_result"])
        #expect(result["tool_call_id"] == "c1" && result["name"] == "echo" && result["ok"] == true)
        #expect(result["output"] == "hello; rm -rf /\n", "one literal argument, no shell")
        #expect(result["duration_ms"]?.intValue != nil)
        let done = try #require(events.last)
        #expect(done["steps"] == 2)
        #expect(done["usage"]?["total_tokens"] == 24, "usage is summed over the model calls")
        #expect(
            done["messages"] == [
                [
                    "role": "assistant",
                    "tool_calls": [["id": "c1", "name": "echo", "arguments": ["text": "hello; rm -rf /"]]],
                ],
                ["role": "tool", "content": "hello; rm -rf /\n", "tool_call_id": "c1", "name": "echo"],
                ["role": "assistant", "content": "Done."],
            ])
        let second = try #require(llm.requests.last)
        #expect(second.messages.map(\.role) == [.user, .assistant, .tool])
        #expect(second.messages.last?.content == "hello; rm -rf /\n")
        #expect(report.toolCalls == 1 && report.toolErrors == 0)
    }

    @Test func aTurnWithAClientCallEndsTheRequestAfterItsServerCalls() async throws {
        let llm = ScriptedLLM(calls: [
            turn(reply("", calls: [call("c1", "echo", ["text": "x"]), call("c2", "ask_user")]))
        ])
        let (report, sink) = await run(
            ChatRequest(id: .int(2), messages: [ChatMessage(role: .user, content: "go")]), llm)
        #expect(sink.types == ["start", "tool_call", "tool_call", "tool_result", "done"])
        let done = try #require(sink.sent.joined().last)
        #expect(done["finish_reason"] == "tool_calls")
        #expect(done["tool_calls"] == [["id": "c2", "name": "ask_user", "arguments": [:]]])
        #expect(done["messages"]?.arrayValue?.map { $0["role"] } == ["assistant", "tool"])
        #expect(done["messages"]?.arrayValue?.first?["tool_calls"]?.arrayValue?.count == 2)
        #expect(llm.requests.count == 1)
        guard case .done(let completion) = report.outcome else {
            Issue.record("expected done")
            return
        }
        #expect(completion.toolCalls.map(\.id) == ["c2"])
    }

    @Test func aModelThatKeepsCallingToolsHitsTheStepLimit() async throws {
        let llm = ScriptedLLM(calls: [turn(reply("", calls: [call("c", "echo", ["text": "again"])]))])
        let request = ChatRequest(
            id: .int(3), messages: [ChatMessage(role: .user, content: "go")], options: ["max_steps": 2])
        let (report, sink) = await run(request, llm)
        #expect(llm.requests.count == 2)
        #expect(report.toolCalls == 1, "the last step's calls are not run")
        #expect(sink.types.last == "error")
        #expect(sink.sent.joined().last?["error"]?["code"] == "step_limit")
    }

    @Test func aRequestMayNotRaiseMaxSteps() async {
        let (report, sink) = await run(
            ChatRequest(id: .int(4), messages: [ChatMessage(role: .user, content: "go")], options: ["max_steps": 9]),
            ScriptedLLM([]))
        guard case .failed(let info) = report.outcome else {
            Issue.record("expected a failure")
            return
        }
        #expect(info.code == .badRequest)
        #expect(info.message == "options.max_steps: must be an integer between 1 and the agent's max_steps (3), got 9")
        #expect(sink.types == ["error"])
    }

    @Test func aToolStillRunningAtTheRequestTimeoutIsEndedAndTheRequestTimesOut() async throws {
        var quick = agent
        quick.limits.timeouts.total = .seconds(1)
        let llm = ScriptedLLM(calls: [turn(reply("", calls: [call("c", "nap")]))])
        let started = ContinuousClock.now
        let (report, sink) = await run(
            ChatRequest(id: .int(5), messages: [ChatMessage(role: .user, content: "go")]), llm, on: quick)
        // Far below the 300 s nap: the timeout, not the tool, ended the request (a loaded machine
        // can take seconds to deliver the signals).
        #expect(ContinuousClock.now - started < .seconds(60))
        #expect(sink.sent.joined().last?["error"]?["code"] == "timeout")
        #expect(report.outcome != .done(reply("")))
    }

    @Test func aFailingToolIsAResultNotAnError() async throws {
        var broken = agent
        broken.execTools["echo"] = ExecTool(argv: ["/bin/sh", "-c", "echo oops >&2; exit 3"])
        let llm = ScriptedLLM(calls: [
            turn(reply("", calls: [call("c1", "echo", ["text": "x"])])), turn(reply("Sorry.")),
        ])
        let (report, sink) = await run(
            ChatRequest(id: .int(6), messages: [ChatMessage(role: .user, content: "go")]), llm, on: broken)
        let result = try #require(sink.sent.joined().first { $0["type"] == "tool_result" }?["tool_result"])
        #expect(result["ok"] == false)
        #expect(result["output"]?.stringValue?.contains("exit status 3") == true)
        #expect(sink.types.last == "done")
        #expect(report.toolErrors == 1)
    }
}
