public import AgentProtocol
import JSON

/// Provider-neutral conversation types. The daemon builds these from client requests and
/// agent definitions; the Mistral clients turn them into request bodies.

/// A function the model may call (normal mode; in agent mode the Mistral agent owns its tools).
public struct ToolSpec: Sendable, Hashable {
    public var name: String
    public var description: String
    /// A JSON Schema object.
    public var parameters: JSONValue

    public init(name: String, description: String = "", parameters: JSONValue) {
        self.name = name
        self.description = description
        self.parameters = parameters
    }
}

public enum ToolChoice: Sendable, Hashable {
    case auto, none, any, required
    case function(name: String)
}

public enum ResponseFormat: Sendable, Hashable {
    case text
    case jsonObject
    case jsonSchema(name: String, schema: JSONValue, strict: Bool, description: String?)
}

/// How much a reasoning model thinks before it answers (Mistral's `reasoning_effort`).
public enum ReasoningEffort: String, Sendable, Hashable, CaseIterable {
    case none, minimal, low, medium, high, xhigh
}

/// Sampling and output settings. `nil` leaves the field out of the request body.
public struct GenerationOptions: Sendable, Hashable {
    public var temperature: Double?
    public var topP: Double?
    public var maxTokens: Int?
    public var randomSeed: Int?
    public var stop: [String]?
    public var presencePenalty: Double?
    public var frequencyPenalty: Double?
    public var safePrompt: Bool?
    public var responseFormat: ResponseFormat?
    public var toolChoice: ToolChoice?
    public var parallelToolCalls: Bool?
    public var reasoningEffort: ReasoningEffort?
    /// `reasoning`, the one value Mistral knows (for its magistral models).
    public var promptMode: String?
    /// Text the reply is expected to resemble (Mistral's `prediction` of type `content`).
    public var prediction: String?
    public var promptCacheKey: String?

    public init(
        temperature: Double? = nil, topP: Double? = nil, maxTokens: Int? = nil, randomSeed: Int? = nil,
        stop: [String]? = nil, presencePenalty: Double? = nil, frequencyPenalty: Double? = nil,
        safePrompt: Bool? = nil, responseFormat: ResponseFormat? = nil, toolChoice: ToolChoice? = nil,
        parallelToolCalls: Bool? = nil, reasoningEffort: ReasoningEffort? = nil, promptMode: String? = nil,
        prediction: String? = nil, promptCacheKey: String? = nil
    ) {
        self.temperature = temperature
        self.topP = topP
        self.maxTokens = maxTokens
        self.randomSeed = randomSeed
        self.stop = stop
        self.presencePenalty = presencePenalty
        self.frequencyPenalty = frequencyPenalty
        self.safePrompt = safePrompt
        self.responseFormat = responseFormat
        self.toolChoice = toolChoice
        self.parallelToolCalls = parallelToolCalls
        self.reasoningEffort = reasoningEffort
        self.promptMode = promptMode
        self.prediction = prediction
        self.promptCacheKey = promptCacheKey
    }

    /// `overrides` wins field by field: per-request options over the agent's defaults.
    public func merging(_ overrides: GenerationOptions) -> GenerationOptions {
        GenerationOptions(
            temperature: overrides.temperature ?? temperature,
            topP: overrides.topP ?? topP,
            maxTokens: overrides.maxTokens ?? maxTokens,
            randomSeed: overrides.randomSeed ?? randomSeed,
            stop: overrides.stop ?? stop,
            presencePenalty: overrides.presencePenalty ?? presencePenalty,
            frequencyPenalty: overrides.frequencyPenalty ?? frequencyPenalty,
            safePrompt: overrides.safePrompt ?? safePrompt,
            responseFormat: overrides.responseFormat ?? responseFormat,
            toolChoice: overrides.toolChoice ?? toolChoice,
            parallelToolCalls: overrides.parallelToolCalls ?? parallelToolCalls,
            reasoningEffort: overrides.reasoningEffort ?? reasoningEffort,
            promptMode: overrides.promptMode ?? promptMode,
            prediction: overrides.prediction ?? prediction,
            promptCacheKey: overrides.promptCacheKey ?? promptCacheKey
        )
    }
}

/// Which Mistral API serves an agent.
public enum Upstream: Sendable, Hashable {
    /// Normal mode: `POST /v1/chat/completions`.
    case chatCompletions(model: String)
    /// Agent mode, `agent_api: conversations`: `POST /v1/conversations`.
    case conversations(agentID: String)
    /// Agent mode, `agent_api: completions`: `POST /v1/agents/completions`.
    case agentCompletions(agentID: String)
}

/// Time limits for one upstream call (CONTRACT §2 `limits`).
public struct Timeouts: Sendable, Hashable {
    public var total: Duration
    public var firstByte: Duration
    public var idle: Duration
    public var connect: Duration

    public init(
        total: Duration = .seconds(120), firstByte: Duration = .seconds(30), idle: Duration = .seconds(60),
        connect: Duration = .seconds(10)
    ) {
        self.total = total
        self.firstByte = firstByte
        self.idle = idle
        self.connect = connect
    }
}

/// Retries of 429, 5xx and connection failures (CONTRACT §2 `retry`, §5).
public struct RetryPolicy: Sendable, Hashable {
    /// Total attempts, the first included.
    public var attempts: Int
    public var baseDelay: Duration
    public var maxDelay: Duration

    public init(attempts: Int = 3, baseDelay: Duration = .milliseconds(250), maxDelay: Duration = .seconds(8)) {
        self.attempts = attempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }
}

/// One upstream call: an agent's fixed settings plus a client's history and overrides.
public struct LLMRequest: Sendable {
    public var upstream: Upstream
    /// Normal mode only: system prompts placed before the history.
    public var system: [String]
    /// Normal mode only.
    public var tools: [ToolSpec]
    public var options: GenerationOptions
    public var messages: [ChatMessage]
    public var timeouts: Timeouts
    public var retry: RetryPolicy
    /// Whether to ask upstream for a stream (`stream: true`) or one JSON reply. Either way the
    /// client yields the same events.
    public var stream: Bool
    /// Told about each HTTP response and retry; nil: nobody counts them.
    public var observer: (any UpstreamObserver)? = nil

    public init(
        upstream: Upstream, system: [String] = [], tools: [ToolSpec] = [], options: GenerationOptions = .init(),
        messages: [ChatMessage], timeouts: Timeouts = .init(), retry: RetryPolicy = .init(), stream: Bool = true
    ) {
        self.upstream = upstream
        self.system = system
        self.tools = tools
        self.options = options
        self.messages = messages
        self.timeouts = timeouts
        self.retry = retry
        self.stream = stream
    }
}

public struct Usage: Sendable, Hashable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int
    /// Prompt tokens served from Mistral's prompt cache (`prompt_tokens_details.cached_tokens`).
    public var cachedTokens: Int
    /// Tokens the conversations API counts for connectors (built-in tools).
    public var connectorTokens: Int

    public init(
        promptTokens: Int = 0, completionTokens: Int = 0, totalTokens: Int = 0, cachedTokens: Int = 0,
        connectorTokens: Int = 0
    ) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.totalTokens = totalTokens
        self.cachedTokens = cachedTokens
        self.connectorTokens = connectorTokens
    }
}

/// The end of a successful reply.
public struct Completion: Sendable, Hashable {
    public var text: String
    /// Every call, with the client's own ids where the history used them.
    public var toolCalls: [ToolCall]
    /// `stop`, `length`, `model_length`, `tool_calls` or `error`, as Mistral reports it.
    public var finishReason: String
    public var usage: Usage
    /// The model that answered, as upstream names it.
    public var model: String?
    /// The model's thinking, whole; never part of `text`.
    public var reasoning: String
    public var citations: [Citation]
    public var files: [GeneratedFile]
    /// The `x-ratelimit-remaining-*` headers of the reply, by the name after that prefix
    /// (`tokens-minute`, `req-minute`).
    public var rateLimitsRemaining: [String: Int64]

    public init(
        text: String, toolCalls: [ToolCall], finishReason: String, usage: Usage, model: String?,
        reasoning: String = "", citations: [Citation] = [], files: [GeneratedFile] = [],
        rateLimitsRemaining: [String: Int64] = [:]
    ) {
        self.text = text
        self.toolCalls = toolCalls
        self.finishReason = finishReason
        self.usage = usage
        self.model = model
        self.reasoning = reasoning
        self.citations = citations
        self.files = files
        self.rateLimitsRemaining = rateLimitsRemaining
    }
}

/// What a call yields, in order: text, reasoning, citations, files, built-in tool runs and
/// handoffs as they arrive, then each tool call, then one `.done`. Failures end the stream by
/// throwing an `ErrorInfo` (AgentProtocol) with a contract error code.
public enum LLMEvent: Sendable, Hashable {
    case text(String)
    /// A piece of the model's thinking.
    case reasoning(String)
    case citation(Citation)
    case file(GeneratedFile)
    case toolExecution(ToolExecution)
    case handoff(Handoff)
    case toolCall(ToolCall)
    case done(Completion)
}
