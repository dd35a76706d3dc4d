import AgentCore
import AgentProtocol
import Basics
import JSON
import LLM
import Logging

/// A request's place under its agent's concurrency limit, taken when the request was admitted.
public protocol Admission: Sendable {
    /// Returns once the request may call upstream; throws `overloaded`/`timeout` as an
    /// `ErrorInfo` when the queue wait outlasts `deadline`, or on cancellation.
    func waitForSlot(agent: String, deadline: ContinuousClock.Instant) async throws
}

/// How a request ended, for the agent's counters.
public enum RequestOutcome: Sendable, Equatable {
    case done(Completion)
    case failed(ErrorInfo)
}

/// Runs one chat request against one agent and sends its events: when streaming, `start` once
/// the upstream answers, then deltas and tool calls; then exactly one terminal `done` or `error`.
///
/// Everything between a decoded request line and its terminal event happens here: options,
/// the queue wait, the upstream call (whose fixups and retries are the LLM layer's) and the
/// mapping of its reply to events. It knows nothing of sockets: the sink and the admission are
/// the transport's.
public struct RequestRunner: Sendable {
    let client: any LLMClient
    let logger: Logger
    let logContent: Bool
    let sessions: SessionService?

    public init(client: any LLMClient, logger: Logger, logContent: Bool, sessions: SessionService? = nil) {
        self.client = client
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

    /// `beforeTerminal` runs just before the terminal event is written, so the connection can
    /// free the request's id for reuse by the time the client reads that event.
    public func run(
        _ request: ChatRequest, on definition: AgentDefinition, admission: some Admission, handle: RequestHandle,
        peer: Peer?, sink: some EventSink, beforeTerminal: @escaping @Sendable () -> Void
    ) async -> RequestOutcome {
        let started = ContinuousClock.now
        // The session's lock is given back before any terminal event, so the client's next
        // request never finds it busy; and on every other way out, such as a disconnect.
        let turn = SessionTurn(
            request: request, definition: definition, uid: peer?.uid ?? SessionTurn.daemonUID, service: sessions)
        defer { turn.release() }
        let beforeTerminal: @Sendable () -> Void = {
            turn.release()
            beforeTerminal()
        }
        // Built only for messages the log level lets through: most requests log none.
        func metadata(_ fields: Logger.Metadata) -> Logger.Metadata {
            var metadata = fields
            metadata["agent"] = "\(definition.name)"
            metadata["request.id"] = "\(request.id)"
            if let peer {
                metadata["peer.uid"] = "\(peer.uid)"
                metadata["peer.pid"] = "\(peer.pid)"
            }
            return metadata
        }
        if logContent, let last = request.messages.last?.content?.text {
            logger.info("Request received", metadata: metadata(["content": "\(last)"]))
        } else {
            logger.debug("Request received", metadata: metadata(["messages": "\(request.messages.count)"]))
        }

        let outcome: RequestOutcome
        do {
            let completion = try await execute(
                request, definition: definition, turn: turn, admission: admission, sink: sink,
                beforeTerminal: beforeTerminal)
            if logContent { logger.info("Reply", metadata: metadata(["content": "\(completion.text)"])) }
            outcome = .done(completion)
        } catch is SinkClosed {
            outcome = .failed(handle.cancellationReason ?? .clientDisconnected)
        } catch {
            let info = handle.cancellationReason ?? Self.errorInfo(error)
            outcome = .failed(info)
            // A cancelled task cannot write (NIO refuses writes from it), yet the client is owed
            // its terminal event: an unstructured task does not inherit the cancellation.
            beforeTerminal()
            await Task { try? await sink.send(Event.error(id: request.id, info)) }.value
        }
        let elapsed = ContinuousClock.now - started
        switch outcome {
        case .failed(let info):
            logger.notice(
                "Request failed",
                metadata: metadata([
                    "error.code": "\(info.code.rawValue)", "error.message": "\(info.message)",
                    "duration_ms": "\(elapsed.milliseconds)",
                ]))
        case .done:
            logger.info("Request done", metadata: metadata(["duration_ms": "\(elapsed.milliseconds)"]))
        }
        return outcome
    }

    private func execute(
        _ request: ChatRequest, definition: AgentDefinition, turn: SessionTurn, admission: some Admission,
        sink: some EventSink, beforeTerminal: @escaping @Sendable () -> Void
    ) async throws -> Completion {
        let options: GenerationOptions
        do {
            options = try RequestOptions.parse(request.options ?? .object([:]), for: definition)
        } catch {
            throw ErrorInfo(code: .badRequest, message: "\(error)")
        }
        // The whole-request timeout has two parts: the queue wait, bounded here, and the upstream
        // call, bounded by the LLM layer with what is left. No timer runs for requests that
        // find a free slot, which is nearly all of them.
        let deadline = ContinuousClock.now + definition.limits.timeouts.total
        // Before the queue wait: a second request of a busy session is told at once.
        let history = try await turn.begin()
        try await admission.waitForSlot(agent: definition.name, deadline: deadline)
        var llmRequest = definition.llmRequest(messages: history + request.messages, overrides: options)
        llmRequest.timeouts.total = max(.milliseconds(1), deadline - ContinuousClock.now)
        // `start` says the upstream is answering. It goes out with the reply's first batch, in
        // the same write, or on its own when the head arrives and the body is slow to follow.
        var start: [JSONValue] =
            request.stream
            ? [
                Event.start(
                    id: request.id, agent: definition.name, mode: definition.mode.rawValue,
                    modelKey: definition.mode == .normal ? "model" : "agent_id", model: definition.modelOrAgentID)
            ] : []
        var completion: Completion?
        let events = EventMapping(request: request, reasoning: definition.reasoning)
        try await client.run(llmRequest) {
            guard !start.isEmpty else { return }
            try await send(start, to: sink)
            start = []
        } deliver: { batch in
            var lines = start
            start = []
            for event in batch {
                if case .done(let done) = event {
                    // The reply's text need not wait for the turn's fsync; only the done must.
                    if turn.name != nil, !lines.isEmpty {
                        try await send(lines, to: sink)
                        lines = []
                    }
                    try await turn.commit(done)
                    lines.append(events.done(done, responseFormat: llmRequest.options.responseFormat))
                    completion = done
                    beforeTerminal()
                } else if let line = events.streamed(event) {
                    lines.append(line)
                }
            }
            if !lines.isEmpty { try await send(lines, to: sink) }
        }
        guard let completion else {
            throw ErrorInfo(code: .internal, message: "the upstream reply ended without a final event")
        }
        return completion
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

    static func errorInfo(_ error: any Error) -> ErrorInfo {
        switch error {
        case let info as ErrorInfo: info
        case is CancellationError: .cancelledByClient
        default: ErrorInfo(code: .internal, message: "internal error: \(error)")
        }
    }
}
