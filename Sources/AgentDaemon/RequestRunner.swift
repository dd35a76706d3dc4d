import AgentCore
import AgentProtocol
import JSON
import LLM
import Logging

/// Where a request's events go: a connection's outbound side.
protocol EventSink: Sendable {
    /// Writes the events' lines in one go. Suspends while the client is not reading
    /// (back-pressure); throws when it is gone.
    func send(_ events: [JSONValue]) async throws
}

extension EventSink {
    func send(_ event: JSONValue) async throws {
        try await send([event])
    }
}

/// Runs one chat request against one agent and sends its events: when streaming, `start` once
/// the upstream answers, then deltas and tool calls; then exactly one terminal `done` or `error`.
struct RequestRunner: Sendable {
    let client: MistralClient
    let logger: Logger
    let logContent: Bool

    struct Peer: Sendable {
        var pid: Int32
        var uid: UInt32
        var gid: UInt32
    }

    /// `beforeTerminal` runs just before the terminal event is written, so the connection can
    /// free the request's id for reuse by the time the client reads that event.
    func run(
        _ request: ChatRequest, on agent: AgentRuntime, reservation: ConcurrencyLimiter.Reservation,
        handle: RequestHandle, peer: Peer?, sink: some EventSink, beforeTerminal: @escaping @Sendable () -> Void
    ) async {
        let definition = agent.definition
        let started = ContinuousClock.now
        // Built only for messages the log level lets through: most requests log none.
        func metadata(_ fields: Logger.Metadata) -> Logger.Metadata {
            var metadata = fields
            metadata["agent"] = "\(agent.name)"
            metadata["request.id"] = "\(request.id)"
            if let peer {
                metadata["peer.uid"] = "\(peer.uid)"
                metadata["peer.pid"] = "\(peer.pid)"
            }
            return metadata
        }
        if logContent, let last = request.messages.last?.content {
            logger.info("Request received", metadata: metadata(["content": "\(last)"]))
        } else {
            logger.debug("Request received", metadata: metadata(["messages": "\(request.messages.count)"]))
        }
        agent.count {
            $0.requests += 1
            $0.inFlight += 1
        }
        defer {
            reservation.finish()
            agent.count { $0.inFlight -= 1 }
        }

        let outcome: ErrorInfo?
        do {
            let completion = try await execute(
                request, definition: definition, reservation: reservation, sink: sink, beforeTerminal: beforeTerminal)
            agent.count {
                $0.promptTokens += completion.usage.promptTokens
                $0.completionTokens += completion.usage.completionTokens
            }
            if logContent { logger.info("Reply", metadata: metadata(["content": "\(completion.text)"])) }
            outcome = nil
        } catch is SinkClosed {
            outcome = handle.cancellationReason ?? .clientDisconnected
        } catch {
            let info = handle.cancellationReason ?? Self.errorInfo(error)
            outcome = info
            // A cancelled task cannot write (NIO refuses writes from it), yet the client is owed
            // its terminal event: an unstructured task does not inherit the cancellation.
            beforeTerminal()
            await Task { try? await sink.send(Event.error(id: request.id, info)) }.value
        }
        let elapsed = ContinuousClock.now - started
        if let outcome {
            agent.count { $0.errors += 1 }
            logger.notice(
                "Request failed",
                metadata: metadata([
                    "error.code": "\(outcome.code.rawValue)", "error.message": "\(outcome.message)",
                    "duration_ms": "\(elapsed.milliseconds)",
                ]))
        } else {
            logger.info("Request done", metadata: metadata(["duration_ms": "\(elapsed.milliseconds)"]))
        }
    }

    private func execute(
        _ request: ChatRequest, definition: AgentDefinition, reservation: ConcurrencyLimiter.Reservation,
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
        try await reservation.waitForSlot(agent: definition.name, deadline: deadline)
        var llmRequest = definition.llmRequest(messages: request.messages, overrides: options)
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
        try await client.run(llmRequest) {
            guard !start.isEmpty else { return }
            try await send(start, to: sink)
            start = []
        } deliver: { batch in
            var lines = start
            start = []
            for event in batch {
                switch event {
                case .text(let text):
                    if request.stream { lines.append(Event.delta(id: request.id, text: text)) }
                case .toolCall(let call):
                    if request.stream { lines.append(Event.toolCall(id: request.id, call: call.eventJSON)) }
                case .done(let done):
                    lines.append(
                        Event.done(
                            id: request.id, text: done.text, toolCalls: done.toolCalls.map(\.eventJSON),
                            finishReason: done.finishReason, usage: done.usage.json, model: done.model))
                    completion = done
                    beforeTerminal()
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

/// The client stopped reading for good: its connection is gone.
struct SinkClosed: Error {}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

extension ToolCall {
    /// `arguments` as an object when it holds JSON text, as events promise.
    var eventJSON: JSONValue {
        var arguments = self.arguments
        if case .string(let text) = arguments, let parsed = try? JSONParser.parse(text), case .object = parsed {
            arguments = parsed
        }
        return ["id": .string(id), "name": .string(name), "arguments": arguments]
    }
}

extension Usage {
    var json: JSONValue {
        [
            "prompt_tokens": .int(Int64(promptTokens)), "completion_tokens": .int(Int64(completionTokens)),
            "total_tokens": .int(Int64(totalTokens)),
        ]
    }
}

extension AgentDefinition {
    /// The upstream call for a client's history, with per-request options over the agent's own.
    func llmRequest(messages: [ChatMessage], overrides: GenerationOptions) -> LLMRequest {
        LLMRequest(
            upstream: upstream, system: system, tools: tools, options: options.merging(overrides),
            messages: messages, timeouts: limits.timeouts, retry: retry)
    }
}
