import AgentCore
import JSON
import Synchronization

/// One served agent: its current definition, its socket, its limiter and its counters.
///
/// A reload swaps `definition`; requests already running keep the snapshot they started with.
final class AgentRuntime: Sendable {
    enum State: String, Sendable {
        /// The definition in service is the file's current content.
        case ok
        /// The file failed to load at the last reload; the previous definition stays in service.
        case stale
    }

    struct Counters: Sendable {
        var requests = 0
        var errors = 0
        var promptTokens = 0
        var completionTokens = 0
        var inFlight = 0

        var json: JSONValue {
            [
                "requests": .int(Int64(requests)), "errors": .int(Int64(errors)),
                "prompt_tokens": .int(Int64(promptTokens)), "completion_tokens": .int(Int64(completionTokens)),
                "in_flight": .int(Int64(inFlight)),
            ]
        }
    }

    let name: String
    let limiter: ConcurrencyLimiter
    private let current: Mutex<(definition: AgentDefinition, state: State, removed: Bool)>
    private let counterStore = Mutex(Counters())

    init(definition: AgentDefinition) {
        name = definition.name
        limiter = ConcurrencyLimiter(
            capacity: definition.limits.maxConcurrent, queueLimit: definition.limits.queue)
        current = Mutex((definition, .ok, false))
    }

    var definition: AgentDefinition { current.withLock { $0.definition } }
    var state: State { current.withLock { $0.state } }
    /// Set when a reload removed the agent: open connections get `unknown_agent` for new requests.
    var isRemoved: Bool { current.withLock { $0.removed } }
    var counters: Counters { counterStore.withLock { $0 } }

    func replace(with definition: AgentDefinition) {
        current.withLock { $0 = (definition, .ok, false) }
        limiter.resize(capacity: definition.limits.maxConcurrent, queueLimit: definition.limits.queue)
    }

    func markStale() { current.withLock { $0.state = .stale } }
    func markRemoved() { current.withLock { $0.removed = true } }

    func count(_ update: (inout Counters) -> Void) { counterStore.withLock { update(&$0) } }

    /// The entry of `list`.
    func listing(socketPath: String) -> JSONValue {
        let definition = definition
        var entry: JSONObject = ["name": .string(name), "mode": .string(definition.mode.rawValue)]
        entry[definition.mode == .normal ? "model" : "agent_id"] = .string(definition.modelOrAgentID)
        entry["socket"] = .string(socketPath)
        entry["description"] = definition.description.map(JSONValue.string) ?? .null
        entry["state"] = .string(state.rawValue)
        return .object(entry)
    }
}
