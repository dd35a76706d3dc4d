import AgentCore
import AgentProtocol
import AgentRunner
import JSON
import Synchronization

/// One served agent: its current definition, its socket, its limiter and its counters.
///
/// A reload swaps `definition`; requests already running keep the snapshot they started with.
final class AgentRuntime: Sendable {
    /// Where the agent stands after the latest reload. `removed` is final: a re-added file
    /// makes a new runtime.
    enum State: Sendable, Equatable {
        /// The definition in service is the file's current content.
        case serving
        /// The file failed to load at the last reload; the previous definition stays in service.
        case stale
        /// A reload removed the agent: its open connections get `unknown_agent` for new requests.
        case removed

        /// The `state` of `list` and `status`.
        var listed: String {
            switch self {
            case .serving: "ok"
            case .stale: "stale"
            case .removed: "removed"
            }
        }
    }

    struct Counters: Sendable {
        var requests = 0
        var errors = 0
        var promptTokens = 0
        var completionTokens = 0
        var cachedTokens = 0
        var connectorTokens = 0
        var toolCalls = 0
        var toolErrors = 0
        var inFlight = 0
        /// The last `x-ratelimit-remaining-*` values Mistral sent for this agent.
        var rateLimitsRemaining: [String: Int64] = [:]

        var json: JSONValue {
            var object: JSONObject = [
                "requests": .int(Int64(requests)), "errors": .int(Int64(errors)),
                "prompt_tokens": .int(Int64(promptTokens)), "completion_tokens": .int(Int64(completionTokens)),
                "cached_tokens": .int(Int64(cachedTokens)), "connector_tokens": .int(Int64(connectorTokens)),
                "tool_calls": .int(Int64(toolCalls)), "tool_errors": .int(Int64(toolErrors)),
                "in_flight": .int(Int64(inFlight)),
            ]
            if !rateLimitsRemaining.isEmpty {
                object["rate_limits_remaining"] = .object(
                    JSONObject(rateLimitsRemaining.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.int($0.value)) })
                )
            }
            return .object(object)
        }
    }

    let name: String
    let limiter: ConcurrencyLimiter
    /// This agent's Prometheus series, resolved once for all its requests.
    let metrics: AgentMetrics
    private let current: Mutex<(definition: AgentDefinition, state: State)>
    private let counterStore = Mutex(Counters())

    init(definition: AgentDefinition, metrics: AgentMetrics) {
        name = definition.name
        self.metrics = metrics
        limiter = ConcurrencyLimiter(
            capacity: definition.limits.maxConcurrent, queueLimit: definition.limits.queue)
        current = Mutex((definition, .serving))
    }

    var definition: AgentDefinition { current.withLock { $0.definition } }
    var state: State { current.withLock { $0.state } }
    var isRemoved: Bool { state == .removed }
    var counters: Counters { counterStore.withLock { $0 } }

    /// Puts `definition` in service (a change, or the same file loading again after a failure).
    func replace(with definition: AgentDefinition) {
        current.withLock { current in
            guard current.state != .removed else { return }
            current = (definition, .serving)
        }
        limiter.resize(capacity: definition.limits.maxConcurrent, queueLimit: definition.limits.queue)
    }

    /// The file failed to load: the definition in service stays.
    func markStale() {
        current.withLock { current in
            if current.state != .removed { current.state = .stale }
        }
    }

    func markRemoved() { current.withLock { $0.state = .removed } }

    func count(_ update: (inout Counters) -> Void) { counterStore.withLock { update(&$0) } }

    /// Runs one admitted request on the definition in service now, keeping the counters of
    /// `status` (brought up to date before the request's terminal event goes out); the limiter
    /// place is given back when the request has ended.
    func serve(
        _ request: ChatRequest, with runner: RequestRunner, reservation: ConcurrencyLimiter.Reservation,
        handle: RequestHandle, peer: RequestRunner.Peer?, sink: some EventSink,
        beforeTerminal: @escaping @Sendable () -> Void
    ) async {
        count {
            $0.requests += 1
            $0.inFlight += 1
        }
        let started = ContinuousClock.now
        let report = await runner.run(
            request, on: definition, admission: reservation, handle: handle, peer: peer, sink: sink,
            observer: metrics,
            beforeTerminal: { report in
                self.record(report)
                beforeTerminal()
            })
        ended(report, reservation: reservation, started: started)
    }

    /// Gives the limiter place back and counts the request's end. Synchronous and not inlined:
    /// its temporaries would otherwise take room in the frame of `serve`, which every request
    /// keeps while it runs.
    @inline(never)
    private func ended(
        _ report: RequestReport, reservation: ConcurrencyLimiter.Reservation, started: ContinuousClock.Instant
    ) {
        reservation.finish()
        let elapsed = ContinuousClock.now - started
        count { $0.inFlight -= 1 }
        // After `status`'s counters, which clients read right after the terminal event.
        metrics.ended(report.outcome, after: elapsed)
    }

    private func record(_ report: RequestReport) {
        count { counters in
            counters.toolCalls += report.toolCalls
            counters.toolErrors += report.toolErrors
            switch report.outcome {
            case .done(let completion):
                counters.promptTokens += completion.usage.promptTokens
                counters.completionTokens += completion.usage.completionTokens
                counters.cachedTokens += completion.usage.cachedTokens
                counters.connectorTokens += completion.usage.connectorTokens
                if !completion.rateLimitsRemaining.isEmpty {
                    counters.rateLimitsRemaining = completion.rateLimitsRemaining
                }
            case .failed:
                counters.errors += 1
            }
        }
    }

    /// The entry of `list`.
    func listing(socketPath: String) -> JSONValue {
        let definition = definition
        var entry: JSONObject = ["name": .string(name), "mode": .string(definition.mode.rawValue)]
        entry[definition.mode == .normal ? "model" : "agent_id"] = .string(definition.modelOrAgentID)
        entry["socket"] = .string(socketPath)
        entry["description"] = definition.description.map(JSONValue.string) ?? .null
        entry["state"] = .string(state.listed)
        return .object(entry)
    }
}
