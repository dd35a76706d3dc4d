import AgentProtocol
import LLM
public import Sessions
import Tools

/// How an agent reaches Mistral (CONTRACT §2 `mode`).
public enum AgentMode: String, Sendable, CaseIterable {
    /// A model over `/v1/chat/completions`, with this file's system prompt and tools.
    case normal
    /// A Mistral agent (`agent_id`) that owns its instructions and tools.
    case agent
}

/// Where and how a socket is created.
public struct SocketSettings: Sendable, Equatable {
    /// nil: the default place under the socket directory.
    public var path: String?
    public var mode: UInt32
    /// nil: the daemon's default group.
    public var group: String?

    public init(path: String? = nil, mode: UInt32, group: String? = nil) {
        self.path = path
        self.mode = mode
        self.group = group
    }
}

/// Who may connect (CONTRACT §2 `allow`); every name was checked to exist when loaded.
public struct AccessList: Sendable, Equatable {
    public var users: [String]
    public var groups: [String]

    public init(users: [String] = [], groups: [String] = []) {
        self.users = users
        self.groups = groups
    }
}

/// Load limits of one agent (CONTRACT §2 `limits`).
public struct Limits: Sendable, Equatable {
    /// Upstream calls in flight at once.
    public var maxConcurrent = 16
    /// Requests waiting beyond `maxConcurrent`; more are rejected with `overloaded`.
    public var queue = 64
    public var timeouts = Timeouts()
    /// Longest request line accepted.
    public var maxRequestBytes = Limits.defaultMaxRequestBytes

    /// 1 MiB: the contract's default, and the control socket's floor.
    public static let defaultMaxRequestBytes = 1 << 20

    public init() {}
}

/// What becomes of the model's thinking (CONTRACT §2 `reasoning`).
public enum ReasoningVisibility: String, Sendable, CaseIterable {
    /// `reasoning` events and `done.reasoning`.
    case stream
    /// Neither; the thinking still counts in the usage.
    case hide
}

/// An agent's `sessions:` (contract §2): the daemon's session limits it replaces; nil keeps the
/// daemon's. `max_sessions` is not among them: it bounds the one database all agents share.
public struct SessionOverrides: Sendable, Equatable {
    public var ttl: Duration?
    public var maxMessages: Int?
    public var maxBytes: Int?

    /// The keys of an agent file's `sessions:` mapping.
    static let keys = ["ttl", "max_messages", "max_bytes"]

    public init(ttl: Duration? = nil, maxMessages: Int? = nil, maxBytes: Int? = nil) {
        self.ttl = ttl
        self.maxMessages = maxMessages
        self.maxBytes = maxBytes
    }

    public func applied(to limits: SessionLimits) -> SessionLimits {
        var limits = limits
        limits.ttl = ttl ?? limits.ttl
        limits.maxMessages = maxMessages ?? limits.maxMessages
        limits.maxBytes = maxBytes ?? limits.maxBytes
        return limits
    }
}

/// One agent, as loaded from `agents.d/<name>.yaml`.
public struct AgentDefinition: Sendable, Equatable {
    /// The file stem.
    public var name: String
    /// The path it was loaded from.
    public var file: String
    public var description: String?
    public var mode: AgentMode
    public var upstream: Upstream
    /// Normal mode only.
    public var system: [String]
    /// The schemas sent to the model; normal mode only.
    public var tools: [ToolSpec]
    /// The tools agentd runs itself, by name (`exec`, CONTRACT §9): in normal mode some of
    /// `tools`, in agent mode functions the Mistral agent declares.
    public var execTools: [String: ExecTool]
    /// The MCP servers of agentd.yaml whose tools this agent may call (`mcp_servers`).
    public var mcpServers: [String] = []
    /// Model calls a request may make while server tools run.
    public var maxSteps: Int
    public var options: GenerationOptions
    public var socket: SocketSettings
    public var allow: AccessList?
    public var limits: Limits
    public var retry: RetryPolicy
    /// Whether the model's thinking reaches the client (`reasoning: stream|hide`).
    public var reasoning: ReasoningVisibility
    public var sessions: SessionOverrides

    public init(
        name: String, file: String, description: String? = nil, mode: AgentMode, upstream: Upstream,
        system: [String] = [], tools: [ToolSpec] = [], execTools: [String: ExecTool] = [:],
        maxSteps: Int = AgentDefinition.defaultMaxSteps, options: GenerationOptions = .init(),
        socket: SocketSettings = SocketSettings(mode: 0o660), allow: AccessList? = nil, limits: Limits = .init(),
        retry: RetryPolicy = .init(), reasoning: ReasoningVisibility = .stream,
        sessions: SessionOverrides = .init()
    ) {
        self.name = name
        self.file = file
        self.description = description
        self.mode = mode
        self.upstream = upstream
        self.system = system
        self.tools = tools
        self.execTools = execTools
        self.maxSteps = maxSteps
        self.options = options
        self.socket = socket
        self.allow = allow
        self.limits = limits
        self.retry = retry
        self.reasoning = reasoning
        self.sessions = sessions
    }

    /// `max_steps` when the file does not say: room for a few rounds of tools, and an end to a
    /// model that keeps calling them.
    public static let defaultMaxSteps = 8
    /// The largest `max_steps` a file may set.
    public static let maxStepsLimit = 64

    /// The model (normal mode) or the Mistral agent id (agent mode).
    public var modelOrAgentID: String {
        switch upstream {
        case .chatCompletions(let model): model
        case .conversations(let agentID), .agentCompletions(let agentID): agentID
        }
    }
}

extension AgentDefinition {
    /// One line for listings: `support (normal, mistral-small-latest)`.
    public var summary: String { "\(name) (\(mode.rawValue), \(modelOrAgentID))" }
}

extension AgentDefinition {
    /// The upstream call for a client's history, with per-request options over the agent's own.
    public func llmRequest(messages: [ChatMessage], overrides: GenerationOptions) -> LLMRequest {
        LLMRequest(
            upstream: upstream, system: system, tools: tools, options: options.merging(overrides),
            messages: messages, timeouts: limits.timeouts, retry: retry)
    }
}
