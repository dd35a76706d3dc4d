import AgentCore
import AgentProtocol
import AgentRunner
import JSON
import LLM
import Logging
import Synchronization
import Testing

/// An LLM that replies with a script per call (the last one repeated), recording the
/// requests it was given.
final class ScriptedLLM: LLMClient {
    enum Step: Sendable {
        case head
        case batch([LLMEvent])
        case fail(ErrorInfo)
    }

    private let scripts: [[Step]]
    private let received = Mutex<[LLMRequest]>([])

    init(_ script: [Step]) { scripts = [script] }

    init(calls: [[Step]]) { scripts = calls }

    var requests: [LLMRequest] { received.withLock { $0 } }

    func run(
        _ request: LLMRequest, answered: () async throws -> Void, deliver: ([LLMEvent]) async throws -> Void
    ) async throws {
        let call = received.withLock { requests in
            requests.append(request)
            return requests.count - 1
        }
        for step in scripts[min(call, scripts.count - 1)] {
            switch step {
            case .head: try await answered()
            case .batch(let events): try await deliver(events)
            case .fail(let error): throw error
            }
        }
    }
}

/// Collects the events a request sends, batch by batch.
final class CollectingSink: EventSink {
    private let batches = Mutex<[[JSONValue]]>([])
    private let closed: Bool

    init(closed: Bool = false) { self.closed = closed }

    func send(_ events: [JSONValue]) async throws {
        if closed { throw SinkClosedByPeer() }
        batches.withLock { $0.append(events) }
    }

    var sent: [[JSONValue]] { batches.withLock { $0 } }
    var types: [String] { sent.joined().compactMap { $0["type"]?.stringValue } }

    struct SinkClosedByPeer: Error {}
}

struct FreeSlot: Admission {
    func waitForSlot(agent: String, deadline: ContinuousClock.Instant) async throws {}
}

private struct FullQueue: Admission {
    func waitForSlot(agent: String, deadline: ContinuousClock.Instant) async throws {
        throw ErrorInfo(code: .overloaded, message: "queue full", retryable: true)
    }
}

@Suite struct RequestRunnerTests {
    private let agent = AgentDefinition(
        name: "support", file: "/etc/agentd/agents.d/support.yaml", mode: .normal,
        upstream: .chatCompletions(model: "mistral-small-latest"), system: ["Be brief."],
        options: GenerationOptions(temperature: 0.7))

    private let done = Completion(
        text: "Hello there", toolCalls: [], finishReason: "stop",
        usage: Usage(promptTokens: 3, completionTokens: 2, totalTokens: 5), model: "mistral-small-latest")

    private func run(
        _ request: ChatRequest, llm: ScriptedLLM, sink: CollectingSink, admission: some Admission = FreeSlot(),
        handle: RequestHandle = RequestHandle()
    ) async -> RequestOutcome {
        await run(request, on: agent, llm: llm, sink: sink, admission: admission, handle: handle).outcome
    }

    private func run(
        _ request: ChatRequest, on definition: AgentDefinition, llm: ScriptedLLM, sink: CollectingSink,
        admission: some Admission = FreeSlot(), handle: RequestHandle = RequestHandle()
    ) async -> RequestReport {
        await runner(llm).run(
            request, on: definition, admission: admission, handle: handle, peer: nil, sink: sink,
            beforeTerminal: { _ in })
    }

    private func runner(_ llm: ScriptedLLM) -> RequestRunner {
        let logger = Logger(label: "test")
        return RequestRunner(
            client: llm, tools: ServerTools(defaultWorkingDirectory: "/", logger: logger, logContent: false),
            logger: logger, logContent: false)
    }

    @Test func aStreamedReplyIsStartDeltasAndOneDoneWithStartInTheFirstBatch() async {
        let llm = ScriptedLLM([.batch([.text("Hello"), .text(" there")]), .batch([.done(done)])])
        let sink = CollectingSink()
        let outcome = await run(
            ChatRequest(id: .string("q1"), messages: [ChatMessage(role: .user, content: "hi")]), llm: llm, sink: sink)
        #expect(outcome == .done(done))
        #expect(sink.types == ["start", "delta", "delta", "done"])
        #expect(sink.sent.first?.count == 3, "start travels with the first batch, in one write")
        let last = sink.sent.joined().last
        #expect(last?["id"] == "q1")
        #expect(last?["text"] == "Hello there")
        #expect(last?["usage"]?["total_tokens"] == 5)
    }

    @Test func aHeadAheadOfTheBodySendsStartOnItsOwn() async {
        let llm = ScriptedLLM([.head, .batch([.text("Hi"), .done(done)])])
        let sink = CollectingSink()
        _ = await run(
            ChatRequest(id: .int(2), messages: [ChatMessage(role: .user, content: "hi")]), llm: llm, sink: sink)
        #expect(sink.sent.map { $0.compactMap { $0["type"]?.stringValue } } == [["start"], ["delta", "done"]])
    }

    @Test func withoutStreamingOnlyTheTerminalEventIsSent() async {
        let llm = ScriptedLLM([.batch([.text("Hello"), .done(done)])])
        let sink = CollectingSink()
        _ = await run(
            ChatRequest(id: .int(3), messages: [ChatMessage(role: .user, content: "hi")], stream: false), llm: llm,
            sink: sink)
        #expect(sink.types == ["done"])
    }

    @Test func theAgentsSettingsAndTheRequestsOptionsReachTheLLM() async {
        let llm = ScriptedLLM([.batch([.done(done)])])
        let request = ChatRequest(
            id: .int(4), messages: [ChatMessage(role: .user, content: "hi")], options: ["max_tokens": 20])
        _ = await run(request, llm: llm, sink: CollectingSink())
        let sent = llm.requests.first
        #expect(sent?.upstream == .chatCompletions(model: "mistral-small-latest"))
        #expect(sent?.system == ["Be brief."])
        #expect(sent?.options.temperature == 0.7)
        #expect(sent?.options.maxTokens == 20)
        #expect(sent?.messages.map(\.content) == ["hi"])
    }

    @Test func badOptionsAreABadRequestAndNothingGoesUpstream() async {
        let llm = ScriptedLLM([.batch([.done(done)])])
        let sink = CollectingSink()
        let request = ChatRequest(
            id: .int(5), messages: [ChatMessage(role: .user, content: "hi")], options: ["temperature": 9])
        let outcome = await run(request, llm: llm, sink: sink)
        guard case .failed(let info) = outcome else {
            Issue.record("expected a failure, got \(outcome)")
            return
        }
        #expect(info.code == .badRequest)
        #expect(info.message.contains("temperature"))
        #expect(llm.requests.isEmpty)
        #expect(sink.types == ["error"])
    }

    @Test func anUpstreamFailureIsTheOneTerminalErrorEvent() async {
        let refusal = ErrorInfo(code: .upstreamRateLimited, message: "slow down", retryable: true, status: 429)
        let sink = CollectingSink()
        let outcome = await run(
            ChatRequest(id: .int(6), messages: [ChatMessage(role: .user, content: "hi")]),
            llm: ScriptedLLM([.fail(refusal)]), sink: sink)
        #expect(outcome == .failed(refusal))
        #expect(sink.types == ["error"], "no start for a request Mistral refused")
        #expect(sink.sent.joined().last?["error"]?["status"] == 429)
    }

    @Test func aFullQueueEndsTheRequestBeforeTheLLMIsCalled() async {
        let llm = ScriptedLLM([.batch([.done(done)])])
        let outcome = await run(
            ChatRequest(id: .int(7), messages: [ChatMessage(role: .user, content: "hi")]), llm: llm,
            sink: CollectingSink(), admission: FullQueue())
        #expect(outcome == .failed(ErrorInfo(code: .overloaded, message: "queue full", retryable: true)))
        #expect(llm.requests.isEmpty)
    }

    @Test func theCancellationReasonWinsOverTheErrorItCaused() async {
        let handle = RequestHandle()
        handle.cancel(.cancelledByClient)
        let outcome = await run(
            ChatRequest(id: .int(8), messages: [ChatMessage(role: .user, content: "hi")]),
            llm: ScriptedLLM([.fail(ErrorInfo(code: .cancelled, message: "the request was cancelled"))]),
            sink: CollectingSink(), handle: handle)
        #expect(outcome == .failed(.cancelledByClient))
    }

    @Test func aClientThatIsGoneGetsNoEventsAndCountsAsDisconnected() async {
        let outcome = await run(
            ChatRequest(id: .int(9), messages: [ChatMessage(role: .user, content: "hi")]),
            llm: ScriptedLLM([.batch([.text("Hello"), .done(done)])]), sink: CollectingSink(closed: true))
        #expect(outcome == .failed(.clientDisconnected))
    }

    @Test func toolCallsAreStreamedAndListedInDone() async {
        let call = ToolCall(id: "call-1", name: "get_order_status", arguments: .string(#"{"order_id":"42"}"#))
        var reply = done
        reply.text = ""
        reply.toolCalls = [call]
        reply.finishReason = "tool_calls"
        let sink = CollectingSink()
        _ = await run(
            ChatRequest(id: .int(10), messages: [ChatMessage(role: .user, content: "order 42?")]),
            llm: ScriptedLLM([.batch([.toolCall(call), .done(reply)])]), sink: sink)
        let events = Array(sink.sent.joined())
        #expect(sink.types == ["start", "tool_call", "done"])
        #expect(events[1]["tool_call"]?["arguments"] == ["order_id": "42"], "JSON text arguments become an object")
        #expect(events[2]["tool_calls"]?.arrayValue?.count == 1)
        #expect(events[2]["finish_reason"] == "tool_calls")
    }

    @Test func doneHoldsTheParsedReplyWhenJSONWasAskedFor() async {
        var reply = done
        reply.text = #"{"answer":42}"#
        for (format, expected) in [("json_object", ["answer": 42] as JSONValue?), ("text", nil)] {
            let sink = CollectingSink()
            _ = await run(
                ChatRequest(
                    id: .int(11), messages: [ChatMessage(role: .user, content: "q")],
                    options: ["response_format": .string(format)]),
                llm: ScriptedLLM([.batch([.text(reply.text), .done(reply)])]), sink: sink)
            #expect(sink.sent.joined().last?["json"] == expected)
        }
        var prose = done
        prose.text = "not JSON"
        let sink = CollectingSink()
        _ = await run(
            ChatRequest(
                id: .int(12), messages: [ChatMessage(role: .user, content: "q")],
                options: ["response_format": "json_object"]),
            llm: ScriptedLLM([.batch([.done(prose)])]), sink: sink)
        #expect(sink.sent.joined().last?["json"] == nil, "a reply that does not parse has no json")
    }

    @Test func hiddenReasoningIsNeitherStreamedNorInDone() async {
        var thinking = done
        thinking.reasoning = "Thinking: hmm"
        var quiet = agent
        quiet.reasoning = .hide
        let runner = runner(ScriptedLLM([.batch([.reasoning("Thinking: hmm"), .text("Hi"), .done(thinking)])]))
        for (definition, expected) in [
            (agent, ["start", "reasoning", "delta", "done"]), (quiet, ["start", "delta", "done"]),
        ] {
            let sink = CollectingSink()
            _ = await runner.run(
                ChatRequest(id: .int(13), messages: [ChatMessage(role: .user, content: "q")]), on: definition,
                admission: FreeSlot(), handle: RequestHandle(), peer: nil, sink: sink, beforeTerminal: { _ in })
            #expect(sink.types == expected)
            #expect((sink.sent.joined().last?["reasoning"] != nil) == (definition.reasoning == .stream))
        }
    }

    @Test func aStreamThatBreaksAfterItsDoneEndsWithThatDoneAlone() async {
        let broken = ErrorInfo(code: .upstreamUnavailable, message: "connection reset", retryable: true)
        let sink = CollectingSink()
        let outcome = await run(
            ChatRequest(id: .int(14), messages: [ChatMessage(role: .user, content: "hi")]),
            llm: ScriptedLLM([.batch([.text("Hello there"), .done(done)]), .fail(broken)]), sink: sink)
        #expect(sink.types == ["start", "delta", "done"], "one terminal event, and it is the last")
        #expect(outcome == .done(done))
    }
}
