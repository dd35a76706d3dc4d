import JSON
import LLM

/// Why an option value is not acceptable; `path` leads from the option to the offending part
/// (`stop[1]`), so YAML diagnostics can point at it.
struct OptionProblem: Error, Sendable {
    enum PathComponent: Sendable {
        case index(Int)
        case key(String)
    }

    var path: [PathComponent]
    var message: String

    init(_ message: String, at path: [PathComponent] = []) {
        self.path = path
        self.message = message
    }

    var pathText: String {
        path.map {
            switch $0 {
            case .index(let index): "[\(index)]"
            case .key(let key): ".\(key)"
            }
        }.joined()
    }
}

/// What an option is checked against: the agent's mode, API and tools.
struct OptionContext: Sendable {
    var mode: AgentMode
    /// Agent mode only.
    var agentAPI: AgentAPI?
    var toolNames: [String]

    init(mode: AgentMode, agentAPI: AgentAPI?, toolNames: [String]) {
        self.mode = mode
        self.agentAPI = agentAPI
        self.toolNames = toolNames
    }

    init(agent: AgentDefinition) {
        mode = agent.mode
        switch agent.upstream {
        case .chatCompletions: agentAPI = nil
        case .conversations: agentAPI = .conversations
        case .agentCompletions: agentAPI = .completions
        }
        toolNames = agent.tools.map(\.name)
    }
}

/// Which Mistral API serves an agent-mode agent (`agent_api`).
enum AgentAPI: String, Sendable, CaseIterable {
    case conversations, completions
}

/// The rules of one generation option, shared by agent files and per-request `options`.
struct OptionRule: Sendable {
    typealias Apply = @Sendable (JSONValue, OptionContext, inout GenerationOptions) throws(OptionProblem) -> Void

    var key: String
    /// Whether a client may set it per request (CONTRACT §4 `options`).
    var perRequest: Bool
    /// Whether an agent file may set it (CONTRACT §2); some options only make sense per request.
    var inAgentFile = true
    /// Why the option cannot be used with such an agent, or nil when it can.
    var unavailable: @Sendable (OptionContext) -> String?
    var apply: Apply
}

/// The one table of generation options: names, types, ranges and mode rules.
enum OptionRules {
    static let all: [OptionRule] = [
        OptionRule(key: "temperature", perRequest: true, unavailable: withoutSampling) {
            (value, context, options: inout GenerationOptions) throws(OptionProblem) in
            let upper = context.mode == .agent ? 1.0 : 1.5
            let qualifier = context.mode == .agent ? " in agent mode" : ""
            options.temperature = try number(value, in: 0...upper, qualifier: qualifier)
        },
        OptionRule(key: "top_p", perRequest: true, unavailable: withoutSampling) {
            (value, _, options: inout GenerationOptions) throws(OptionProblem) in
            let number = try number(value, in: 0...1)
            guard number > 0 else { throw OptionProblem("must be greater than 0 and at most 1, got \(format(number))") }
            options.topP = number
        },
        OptionRule(key: "max_tokens", perRequest: true, unavailable: always) {
            (value, _, options: inout GenerationOptions) throws(OptionProblem) in
            options.maxTokens = try integer(value, in: 1...10_000_000)
        },
        OptionRule(key: "random_seed", perRequest: true, unavailable: always) {
            (value, _, options: inout GenerationOptions) throws(OptionProblem) in
            options.randomSeed = try integer(value, in: 0...Int(Int32.max))
        },
        OptionRule(key: "stop", perRequest: true, unavailable: always) {
            (value, _, options: inout GenerationOptions) throws(OptionProblem) in
            options.stop = try stop(value)
        },
        OptionRule(key: "presence_penalty", perRequest: false, unavailable: always) {
            (value, _, options: inout GenerationOptions) throws(OptionProblem) in
            options.presencePenalty = try number(value, in: -2...2)
        },
        OptionRule(key: "frequency_penalty", perRequest: false, unavailable: always) {
            (value, _, options: inout GenerationOptions) throws(OptionProblem) in
            options.frequencyPenalty = try number(value, in: -2...2)
        },
        OptionRule(key: "safe_prompt", perRequest: false, unavailable: normalOnly) {
            (value, _, options: inout GenerationOptions) throws(OptionProblem) in
            options.safePrompt = try bool(value)
        },
        OptionRule(key: "response_format", perRequest: true, unavailable: always) {
            (value, _, options: inout GenerationOptions) throws(OptionProblem) in
            options.responseFormat = try responseFormat(value)
        },
        OptionRule(key: "tool_choice", perRequest: true, unavailable: always) {
            (value, context, options: inout GenerationOptions) throws(OptionProblem) in
            options.toolChoice = try toolChoice(value, context)
        },
        OptionRule(key: "parallel_tool_calls", perRequest: false, unavailable: withoutParallelCalls) {
            (value, _, options: inout GenerationOptions) throws(OptionProblem) in
            options.parallelToolCalls = try bool(value)
        },
        OptionRule(key: "reasoning_effort", perRequest: true, unavailable: always) {
            (value, _, options: inout GenerationOptions) throws(OptionProblem) in
            let choice = try choice(value, from: ReasoningEffort.allCases.map(\.rawValue))
            options.reasoningEffort = ReasoningEffort(rawValue: choice)
        },
        OptionRule(key: "prompt_mode", perRequest: true, unavailable: normalOnly) {
            (value, _, options: inout GenerationOptions) throws(OptionProblem) in
            options.promptMode = try choice(value, from: ["reasoning"])
        },
        OptionRule(key: "prediction", perRequest: true, inAgentFile: false, unavailable: always) {
            (value, _, options: inout GenerationOptions) throws(OptionProblem) in
            options.prediction = try prediction(value)
        },
        OptionRule(key: "prompt_cache_key", perRequest: true, inAgentFile: false, unavailable: withoutCacheKey) {
            (value, _, options: inout GenerationOptions) throws(OptionProblem) in
            guard let key = value.stringValue, !key.isEmpty else {
                throw OptionProblem("expected a non-empty string, got \(describe(value))")
            }
            options.promptCacheKey = key
        },
    ]

    /// The options an agent file may set.
    static let keys = all.filter(\.inAgentFile).map(\.key)

    static func rule(_ key: String) -> OptionRule? { all.first { $0.key == key } }

    // MARK: Availability

    private static let always: @Sendable (OptionContext) -> String? = { _ in nil }

    private static let normalOnly: @Sendable (OptionContext) -> String? = { context in
        context.mode == .normal ? nil : "is only valid in normal mode"
    }

    private static let withoutSampling: @Sendable (OptionContext) -> String? = { context in
        context.agentAPI == .completions
            ? "is not available with agent_api: completions (Mistral's agents completion request has no temperature or top_p); use agent_api: conversations"
            : nil
    }

    private static let withoutCacheKey: @Sendable (OptionContext) -> String? = { context in
        context.agentAPI == .conversations
            ? "is not available with agent_api: conversations (Mistral's completion_args have no prompt_cache_key); use agent_api: completions"
            : nil
    }

    private static let withoutParallelCalls: @Sendable (OptionContext) -> String? = { context in
        context.agentAPI == .conversations
            ? "is not available with agent_api: conversations (Mistral's completion_args have no parallel_tool_calls); use agent_api: completions"
            : nil
    }

    // MARK: Value rules

    private static func number(
        _ value: JSONValue, in range: ClosedRange<Double>, qualifier: String = ""
    ) throws(OptionProblem) -> Double {
        guard let number = value.doubleValue else { throw OptionProblem("expected a number, got \(describe(value))") }
        guard range.contains(number) else {
            throw OptionProblem(
                "must be between \(format(range.lowerBound)) and \(format(range.upperBound))\(qualifier), got \(format(number))"
            )
        }
        return number
    }

    private static func integer(_ value: JSONValue, in range: ClosedRange<Int>) throws(OptionProblem) -> Int {
        guard case .int(let integer) = value else {
            throw OptionProblem("expected an integer, got \(describe(value))")
        }
        guard let int = Int(exactly: integer), range.contains(int) else {
            throw OptionProblem("must be between \(range.lowerBound) and \(range.upperBound), got \(integer)")
        }
        return int
    }

    private static func bool(_ value: JSONValue) throws(OptionProblem) -> Bool {
        guard let bool = value.boolValue else { throw OptionProblem("expected true or false, got \(describe(value))") }
        return bool
    }

    private static func choice(_ value: JSONValue, from choices: [String]) throws(OptionProblem) -> String {
        guard let text = value.stringValue, choices.contains(text) else {
            throw OptionProblem("expected one of \(choices.joined(separator: ", ")), got \(describe(value))")
        }
        return text
    }

    /// The predicted reply's text: a string, or Mistral's `{type: content, content}`.
    private static func prediction(_ value: JSONValue) throws(OptionProblem) -> String {
        if let text = value.stringValue { return text }
        guard case .object(let object) = value, object["type"] == "content",
            let content = object["content"]?.stringValue, object.count == 2
        else {
            throw OptionProblem("expected a string or {type: content, content: STRING}, got \(describe(value))")
        }
        return content
    }

    private static func stop(_ value: JSONValue) throws(OptionProblem) -> [String] {
        if let single = value.stringValue {
            guard !single.isEmpty else { throw OptionProblem("must not be an empty string") }
            return [single]
        }
        guard let items = value.arrayValue else {
            throw OptionProblem("expected a string or a list of strings, got \(describe(value))")
        }
        var result: [String] = []
        for (index, item) in items.enumerated() {
            guard let text = item.stringValue, !text.isEmpty else {
                throw OptionProblem("expected a non-empty string, got \(describe(item))", at: [.index(index)])
            }
            result.append(text)
        }
        return result
    }

    private static func responseFormat(_ value: JSONValue) throws(OptionProblem) -> ResponseFormat {
        let expected = "text, json_object or {json_schema: {name, schema, strict}}"
        switch value {
        case "text": return .text
        case "json_object": return .jsonObject
        case .object(let object):
            guard object.keys == ["json_schema"], let spec = object["json_schema"]?.objectValue else {
                throw OptionProblem(
                    "expected \(expected), got an object with keys \(object.keys.joined(separator: ", "))")
            }
            let path: [OptionProblem.PathComponent] = [.key("json_schema")]
            let known = ["name", "schema", "strict", "description"]
            if let unknown = spec.keys.first(where: { !known.contains($0) }) {
                let hint = Hints.nearest(to: unknown, among: known).map { " (did you mean '\($0)'?)" } ?? ""
                throw OptionProblem("unknown key '\(unknown)'\(hint)", at: path)
            }
            guard let name = spec["name"]?.stringValue, !name.isEmpty else {
                throw OptionProblem("needs a non-empty string 'name'", at: path)
            }
            guard let schema = spec["schema"], schema.objectValue != nil else {
                throw OptionProblem("needs 'schema', a JSON Schema object", at: path)
            }
            var strict = false
            if let value = spec["strict"] {
                guard let bool = value.boolValue else {
                    throw OptionProblem("expected true or false, got \(describe(value))", at: path + [.key("strict")])
                }
                strict = bool
            }
            var description: String?
            if let value = spec["description"] {
                guard let text = value.stringValue else {
                    throw OptionProblem("expected a string, got \(describe(value))", at: path + [.key("description")])
                }
                description = text
            }
            return .jsonSchema(name: name, schema: schema, strict: strict, description: description)
        default:
            throw OptionProblem("expected \(expected), got \(describe(value))")
        }
    }

    private static func toolChoice(_ value: JSONValue, _ context: OptionContext) throws(OptionProblem) -> ToolChoice {
        switch value {
        case "auto": return .auto
        case "none": return .none
        case "any": return .any
        case "required": return .required
        case .object(let object) where object.keys == ["name"]:
            guard let name = object["name"]?.stringValue else {
                throw OptionProblem("expected a tool name string", at: [.key("name")])
            }
            guard context.mode == .normal else {
                throw OptionProblem(
                    "{name: \(name)} needs a tool defined in `tools`, which agent mode does not have; use auto, none, any or required"
                )
            }
            guard context.toolNames.contains(name) else {
                let defined =
                    context.toolNames.isEmpty
                    ? "no tools are defined" : "defined: \(context.toolNames.joined(separator: ", "))"
                throw OptionProblem("names no defined tool '\(name)' (\(defined))", at: [.key("name")])
            }
            return .function(name: name)
        default:
            throw OptionProblem("expected auto, none, any, required or {name: TOOL}, got \(describe(value))")
        }
    }

    /// A value as a message shows it: `a string "x"`, `an object`.
    static func describe(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool(let bool): "\(bool)"
        case .int(let int): "\(int)"
        case .double(let double): format(double)
        case .string(let text): "the string \"\(text)\""
        case .array: "a list"
        case .object: "an object"
        }
    }

    static func format(_ number: Double) -> String {
        number.rounded() == number && abs(number) < 1e15 ? String(Int64(number)) : "\(number)"
    }
}
