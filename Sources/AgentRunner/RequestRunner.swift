import AgentCore
import AgentProtocol
import Basics
import JSON
import LLM
import Logging
import Synchronization

/// A request's place under its agent's concurrency limit, taken when the request was admitted.
public protocol Admission: Sendable {
    /// Returns once the request may call upstream; throws `overloaded`/`timeout` as an
    /// `ErrorInfo` when the queue wait outlasts `deadline`, or on cancellation.
    func waitForSlot(agent: String, deadline: ContinuousClock.Instant) async throws
}

/// How a request ended, for the agent's counters.
public enum RequestOutcome: Sendable, Equatable {
    /// The reply, its usage summed over the request's model calls.
    case done(Completion)
    case failed(ErrorInfo)
}

/// A request's outcome and the server tools it ran, whichever way it ended.
public struct RequestReport: Sendable, Equatable {
    public var outcome: RequestOutcome
    public var toolCalls = 0
    public var toolErrors = 0
}

/// Runs one chat request against one agent and sends its events: when streaming, `start` once
/// the upstream answers, then deltas, tool calls and tool results; then exactly one terminal
/// `done` or `error`.
///
/// Everything between a decoded request line and its terminal event happens here: options,
/// the queue wait, the tool loop (CONTRACT §9) and, for each of its model calls, the upstream
/// call (whose fixups and retries are the LLM layer's) and the mapping of its reply to events.
/// It knows nothing of sockets: the sink and the admission are the transport's.
public struct RequestRunner: Sendable {
    let client: any LLMClient
    let tools: ServerTools
    let logger: Logger
    let logContent: Bool
    let sessions: SessionService?

    public init(
        client: any LLMClient, tools: ServerTools, logger: Logger, logContent: Bool, sessions: SessionService? = nil
    ) {
        self.client = client
        self.tools = tools
        self.logger = logger
        self.logContent = logContent
        self.sessions = sessions
    }

    /// The connected client, for the request's log lines and as the owner of its sessions.
    public struct Peer: Sendable {
        public var pid: Int32
        public var uid: UInt32
        public var gid: UInt32

        public init(pid: Int32, uid: UInt32, gid: UInt32) {
            self.pid = pid
            self.uid = uid
            self.gid = gid
        }
    }

    /// `beforeTerminal` runs once, with the request's report, just before its terminal event is
    /// written (or when it turns out the client is gone): so the connection can free the
    /// request's id for reuse, and the counters are up to date, by the time the client reads
    /// that event. `observer` hears of the request's upstream calls, first text and tool runs.
    public func run(
        _ request: ChatRequest, on definition: AgentDefinition, admission: some Admission, handle: RequestHandle,
        peer: Peer?, sink: some EventSink, observer: (any RequestObserver)? = nil,
        beforeTerminal: @escaping @Sendable (RequestReport) -> Void
    ) async -> RequestReport {
        let started = ContinuousClock.now
        let log = RequestLog(agent: definition.name, requestID: request.id, peer: peer)
        logReceived(request, log)

        var tally = ToolTally()
        // The session's lock is given back before any terminal event, so the client's next
        // request never finds it busy; and on every other way out, such as a disconnect.
        let turn = SessionTurn(
            request: request, definition: definition, uid: peer?.uid ?? SessionTurn.daemonUID, service: sessions)
        defer { turn.release() }
        let terminal = TerminalHook { report in
            turn.release()
            beforeTerminal(report)
        }
        let result: Result<Completion, any Error>
        do {
            result = .success(
                try await execute(
                    request, definition: definition, turn: turn, admission: admission, sink: sink, tally: &tally,
                    observer: observer, started: started, log: log, beforeTerminal: terminal))
        } catch {
            result = .failure(error)
        }
        let (outcome, owedError) = conclude(result, handle: handle, tally: tally, terminal: terminal, log: log)
        if let owedError {
            // A cancelled task cannot write (NIO refuses writes from it), yet the client is owed
            // its terminal event: an unstructured task does not inherit the cancellation.
            await Task { try? await sink.send(Event.error(id: request.id, owedError)) }.value
        }
        logEnd(outcome, after: ContinuousClock.now - started, log)
        return RequestReport(outcome: outcome, toolCalls: tally.calls, toolErrors: tally.errors)
    }

    /// What the request came to, with its terminal report made (unless its done made it), and
    /// the error event the client is still owed. Synchronous, like the log lines below: the
    /// outcomes and reports it builds would otherwise take room in the frame of `run`.
    @inline(never)
    private func conclude(
        _ result: Result<Completion, any Error>, handle: RequestHandle, tally: ToolTally, terminal: TerminalHook,
        log: RequestLog
    ) -> (RequestOutcome, owedError: ErrorInfo?) {
        switch result {
        case .success(let completion):
            logReply(completion, log)
            return (.done(completion), nil)
        case .failure(let error) where error is SinkClosed:
            let outcome = RequestOutcome.failed(handle.cancellationReason ?? .clientDisconnected)
            terminal(RequestReport(outcome: outcome, toolCalls: tally.calls, toolErrors: tally.errors))
            return (outcome, nil)
        case .failure(let error):
            if let done = terminal.reportedDone {
                // The done went out: what fails after it, such as the upstream stream breaking
                // after its last event, changes nothing for the client.
                logFailedAfterDone(error, log)
                return (done.outcome, nil)
            }
            let info = handle.cancellationReason ?? Self.errorInfo(error)
            terminal(RequestReport(outcome: .failed(info), toolCalls: tally.calls, toolErrors: tally.errors))
            return (.failed(info), info)
        }
    }

    // The log lines are written by synchronous functions of their own, kept out of `run`:
    // inlined, each call's temporaries took room in the async frame of `run`, which every
    // request keeps for its whole life.

    @inline(never)
    private func logReceived(_ request: ChatRequest, _ log: RequestLog) {
        if logContent, let last = request.messages.last?.content?.text {
            logger.info("Request received", metadata: log.metadata(["content": "\(last)"]))
        } else {
            logger.debug("Request received", metadata: log.metadata(["messages": "\(request.messages.count)"]))
        }
    }

    @inline(never)
    private func logReply(_ completion: Completion, _ log: RequestLog) {
        if logContent { logger.info("Reply", metadata: log.metadata(["content": "\(completion.text)"])) }
    }

    @inline(never)
    private func logFailedAfterDone(_ error: any Error, _ log: RequestLog) {
        logger.debug("Request failed after its done", metadata: log.metadata(["error": "\(error)"]))
    }

    @inline(never)
    private func logEnd(_ outcome: RequestOutcome, after elapsed: Duration, _ log: RequestLog) {
        switch outcome {
        case .failed(let info):
            var fields: Logger.Metadata = [
                "error.code": "\(info.code.rawValue)", "duration_ms": "\(elapsed.milliseconds)",
            ]
            // Mistral's refusals quote what was sent: the message is content.
            if logContent { fields["error.message"] = "\(info.message)" }
            logger.notice("Request failed", metadata: log.metadata(fields))
        case .done:
            logger.info("Request done", metadata: log.metadata(["duration_ms": "\(elapsed.milliseconds)"]))
        }
    }

    /// The server tools a request ran.
    private struct ToolTally {
        var calls = 0
        var errors = 0
    }

    /// What identifies a request in its log lines. The metadata is built only for lines the log
    /// level lets through (the logger's metadata arguments are autoclosures) and for tool runs:
    /// most requests log none, and building it for each cost four string conversions and a
    /// dictionary.
    struct RequestLog: Sendable {
        let agent: String
        let requestID: RequestID
        let peer: Peer?

        func metadata(_ fields: Logger.Metadata = [:]) -> Logger.Metadata {
            var metadata = fields
            metadata["agent"] = "\(agent)"
            metadata["request.id"] = "\(requestID)"
            if let peer {
                metadata["peer.uid"] = "\(peer.uid)"
                metadata["peer.pid"] = "\(peer.pid)"
            }
            return metadata
        }
    }

    /// Calls the caller's `beforeTerminal` once: a terminal event that could not be written
    /// (the client left as it went out) must not report the request a second time.
    private final class TerminalHook: Sendable {
        private let hook: @Sendable (RequestReport) -> Void
        private let reported = Mutex<RequestReport?>(nil)

        init(_ hook: @escaping @Sendable (RequestReport) -> Void) { self.hook = hook }

        func callAsFunction(_ report: RequestReport) {
            let first = reported.withLock { reported in
                guard reported == nil else { return false }
                reported = report
                return true
            }
            if first { hook(report) }
        }

        /// The report of a `done` that is being or was written: the request's end, whatever follows.
        var reportedDone: RequestReport? {
            reported.withLock { report in
                guard case .done? = report?.outcome else { return nil }
                return report
            }
        }
    }

    private func execute(
        _ request: ChatRequest, definition: AgentDefinition, turn: SessionTurn, admission: some Admission,
        sink: some EventSink, tally: inout ToolTally, observer: (any RequestObserver)?,
        started: ContinuousClock.Instant, log: RequestLog, beforeTerminal: TerminalHook
    ) async throws -> Completion {
        let plan = try await prepare(request, definition: definition, turn: turn, admission: admission)
        var start = plan.start
        let events = EventMapping(request: request, reasoning: definition.reasoning)
        var history = plan.history
        // The assistant and tool messages this request adds: `done.messages`.
        var added: [ChatMessage] = []
        var sofar = Completion(text: "", toolCalls: [], finishReason: "stop", usage: Usage(), model: nil)
        // Only the first batch with text is timed: one Bool test per batch after that.
        var textSent = false
        for step in 1...plan.maxSteps {
            let llmRequest = await upstreamRequest(
                for: history, definition: definition, options: plan.options, deadline: plan.deadline, observer: observer
            )
            var reply: Completion?
            let addedSoFar = added
            try await client.run(llmRequest) {
                guard !start.isEmpty else { return }
                try await send(start, to: sink)
                start = []
            } deliver: { batch in
                var lines = start
                start = []
                if let final = events.append(batch, to: &lines) {
                    reply = final
                    // An answer without tool calls ends the request, in the same write as its last text.
                    if final.toolCalls.isEmpty {
                        try await end(
                            sofar.adding(final), messages: addedSoFar + [Self.assistantMessage(final)],
                            after: lines, turn: turn, events: events,
                            responseFormat: llmRequest.options.responseFormat, steps: step, tally: tally, sink: sink,
                            beforeTerminal: beforeTerminal)
                        lines = []
                    }
                }
                if !lines.isEmpty { try await send(lines, to: sink) }
                if !textSent, let observer, batch.contains(where: \.carriesText) {
                    textSent = true
                    observer.firstText(after: ContinuousClock.now - started)
                }
            }
            guard let reply else {
                throw ErrorInfo(code: .internal, message: "the upstream reply ended without a final event")
            }
            sofar = sofar.adding(reply)
            let assistant = Self.assistantMessage(reply)
            added.append(assistant)
            history.append(assistant)
            if reply.toolCalls.isEmpty { return sofar }

            let (results, clientCalls) = try await runServerCalls(
                of: reply, step: step, maxSteps: plan.maxSteps, for: definition, request: request, sink: sink,
                deadline: plan.deadline, tally: &tally, observer: observer, log: log)
            added += results
            history += results
            if !clientCalls.isEmpty {
                // The client answers its own calls in its next request.
                var pending = sofar
                pending.toolCalls = clientCalls
                pending.finishReason = "tool_calls"
                try await end(
                    pending, messages: added, turn: turn, events: events,
                    responseFormat: llmRequest.options.responseFormat, steps: step, tally: tally, sink: sink,
                    beforeTerminal: beforeTerminal)
                return pending
            }
        }
        // The loop returns or throws at its last step.
        throw ErrorInfo(code: .internal, message: "the tool loop ended without an answer")
    }

    /// What a request's model calls start from.
    private struct Plan {
        var options: GenerationOptions
        var maxSteps: Int
        var deadline: ContinuousClock.Instant
        /// The `start` event, or none for `stream: false`.
        var start: [JSONValue]
        /// The session's stored messages, then the request's.
        var history: [ChatMessage]
    }

    /// Reads the request's options, takes its session's turn and waits for a slot. Kept out of
    /// `execute`, like `end`.
    private func prepare(
        _ request: ChatRequest, definition: AgentDefinition, turn: SessionTurn, admission: some Admission
    ) async throws -> Plan {
        let options: GenerationOptions
        let maxSteps: Int
        do {
            options = try RequestOptions.parse(request.options ?? .object([:]), for: definition)
            maxSteps = try RequestOptions.maxSteps(request.options ?? .object([:]), for: definition)
        } catch {
            throw ErrorInfo(code: .badRequest, message: "\(error)")
        }
        // The whole-request timeout bounds the queue wait, every model call and every tool run:
        // each gets what is left of it. No timer runs for requests that find a free slot and
        // call no tools, which is nearly all of them.
        let deadline = ContinuousClock.now + definition.limits.timeouts.total
        // Before the queue wait: a second request of a busy session is told at once.
        let stored = try await turn.begin()
        try await admission.waitForSlot(agent: definition.name, deadline: deadline)
        // `start` says the upstream is answering. It goes out with the reply's first batch, in
        // the same write, or on its own when the head arrives and the body is slow to follow.
        let start =
            request.stream
            ? [
                Event.start(
                    id: request.id, agent: definition.name, mode: definition.mode.rawValue,
                    modelKey: definition.mode == .normal ? "model" : "agent_id", model: definition.modelOrAgentID)
            ] : []
        return Plan(
            options: options, maxSteps: maxSteps, deadline: deadline, start: start, history: stored + request.messages)
    }

    /// One model call's request: the history so far, the MCP servers' tools in normal mode, and
    /// what is left of the request's time. Kept out of `execute`, like `end`.
    private func upstreamRequest(
        for history: [ChatMessage], definition: AgentDefinition, options: GenerationOptions,
        deadline: ContinuousClock.Instant, observer: (any RequestObserver)?
    ) async -> LLMRequest {
        var llmRequest = definition.llmRequest(messages: history, overrides: options)
        if definition.mode == .normal { llmRequest.tools += await tools.mcpToolSpecs(for: definition) }
        llmRequest.timeouts.total = max(.milliseconds(1), deadline - ContinuousClock.now)
        llmRequest.observer = observer
        return llmRequest
    }

    /// Ends a request: stores its turn (`messages`) and sends its `done`, after the reply's last
    /// `lines` if any. A function of its own, not part of `execute` and its `deliver` closure:
    /// what it keeps across its awaits would otherwise sit in their frames, which every request
    /// holds while its reply streams.
    private func end(
        _ completion: Completion, messages: [ChatMessage], after lines: [JSONValue] = [], turn: SessionTurn,
        events: EventMapping, responseFormat: ResponseFormat?, steps: Int, tally: ToolTally, sink: some EventSink,
        beforeTerminal: TerminalHook
    ) async throws {
        var lines = lines
        // The reply's text need not wait for the turn's fsync; only the done must.
        if turn.name != nil, !lines.isEmpty {
            try await send(lines, to: sink)
            lines = []
        }
        try await turn.commit(messages)
        lines.append(events.done(completion, responseFormat: responseFormat, steps: steps, messages: messages))
        beforeTerminal(RequestReport(outcome: .done(completion), toolCalls: tally.calls, toolErrors: tally.errors))
        // From here the request has ended: its turn is stored, so its done must reach the client
        // even if the task is cancelled now.
        try await sendTerminal(lines, to: sink)
    }

    /// The assistant message a reply adds to the history: its text and every call it made.
    private static func assistantMessage(_ reply: Completion) -> ChatMessage {
        ChatMessage(
            role: .assistant, content: reply.text.isEmpty ? nil : .text(reply.text), toolCalls: reply.toolCalls)
    }

    /// Runs the server tools among a reply's calls and returns their messages, in call order,
    /// with the calls the client answers itself. Kept out of `execute`, like `end`.
    private func runServerCalls(
        of reply: Completion, step: Int, maxSteps: Int, for definition: AgentDefinition, request: ChatRequest,
        sink: some EventSink, deadline: ContinuousClock.Instant, tally: inout ToolTally,
        observer: (any RequestObserver)?, log: RequestLog
    ) async throws -> (messages: [ChatMessage], clientCalls: [ToolCall]) {
        let serverCalls = reply.toolCalls.filter { tools.implements($0, for: definition) }
        let clientCalls = reply.toolCalls.filter { !tools.implements($0, for: definition) }
        if clientCalls.isEmpty, step == maxSteps {
            throw ErrorInfo(
                code: .stepLimit,
                message:
                    "the model still called tools after \(maxSteps) model calls (max_steps \(maxSteps)); its last calls: \(serverCalls.map(\.name).joined(separator: ", "))"
            )
        }
        let results = try await runTools(
            serverCalls, for: definition, request: request, sink: sink, deadline: deadline, log: log)
        tally.calls += results.count
        tally.errors += results.filter { !$0.ok }.count
        for result in results { observer?.toolRan(result.name, ok: result.ok) }
        return (results.map(\.message), clientCalls)
    }

    /// Runs a turn's server calls concurrently, sending each one's `tool_result` as it ends;
    /// the results come back in call order. What is left of the request's time bounds them:
    /// past it they are ended, as a cancel ends them, and the request times out.
    private func runTools(
        _ calls: [ToolCall], for definition: AgentDefinition, request: ChatRequest, sink: some EventSink,
        deadline: ContinuousClock.Instant, log: RequestLog
    ) async throws -> [ToolResult] {
        guard !calls.isEmpty else { return [] }
        let tools = tools
        return try await withThrowingTaskGroup(of: (index: Int, result: ToolResult)?.self) { group in
            for (index, call) in calls.enumerated() {
                group.addTask { (index, await tools.run(call, for: definition, metadata: log.metadata())) }
            }
            // nil: the request's time is up.
            group.addTask {
                try await Task.sleep(until: deadline)
                return nil
            }
            var results = [ToolResult?](repeating: nil, count: calls.count)
            for _ in calls {
                guard let finished = try await group.next(), let (index, result) = finished else {
                    group.cancelAll()
                    throw ErrorInfo(
                        code: .timeout,
                        message:
                            "the request did not finish within its timeout (\(definition.limits.timeouts.total)): tools were still running",
                        retryable: true)
                }
                results[index] = result
                if request.stream { try await send([Event.toolResult(id: request.id, result)], to: sink) }
            }
            group.cancelAll()
            return results.compactMap { $0 }
        }
    }

    /// A write fails either because the task was cancelled (NIO refuses writes from a cancelled
    /// task: the client is still there and is owed its terminal event) or because the client
    /// is gone.
    private func send(_ events: [JSONValue], to sink: some EventSink) async throws {
        do {
            try await sink.send(events)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw SinkClosed()
        }
    }

    /// Writes a `done` whose request has ended (its session turn is stored): a cancellation that
    /// comes now, which NIO would answer by refusing the write, must not lose it. The first try
    /// is the cheap one; only a refused write pays for an unstructured task, which does not
    /// inherit the cancellation.
    private func sendTerminal(_ events: [JSONValue], to sink: some EventSink) async throws {
        do {
            try await send(events, to: sink)
        } catch is CancellationError {
            do {
                try await Task { try await sink.send(events) }.value
            } catch {
                throw SinkClosed()
            }
        }
    }

    static func errorInfo(_ error: any Error) -> ErrorInfo {
        switch error {
        case let info as ErrorInfo: info
        case is CancellationError: .cancelledByClient
        default: ErrorInfo(code: .internal, message: "internal error: \(error)")
        }
    }
}
