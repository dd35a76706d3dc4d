import JSON
import LLM

/// A per-request option a client may not send, naming the field (`options.temperature`).
public struct RequestOptionsError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The offending field, e.g. `options.stop[1]`.
    public var field: String
    public var message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    /// `options.temperature: must be between 0 and 1.5, got 2`
    public var description: String { "\(field): \(message)" }
}

/// The per-request `options` object of the wire protocol (CONTRACT §4), validated by the same
/// table of rules as the agent file's keys.
public enum RequestOptions {
    /// The options a request may set.
    public static let keys = OptionRules.all.filter(\.perRequest).map(\.key) + [maxStepsKey]

    /// Not sent upstream: it bounds the request's tool loop, so it is read on its own.
    private static let maxStepsKey = "max_steps"

    /// `options.max_steps`, which may lower the agent's `max_steps` but not raise it.
    public static func maxSteps(_ options: JSONValue, for agent: AgentDefinition) throws(RequestOptionsError) -> Int {
        guard let value = options[maxStepsKey] else { return agent.maxSteps }
        guard case .int(let steps) = value, let count = Int(exactly: steps), (1...agent.maxSteps).contains(count) else {
            throw RequestOptionsError(
                field: "options.\(maxStepsKey)",
                message:
                    "must be an integer between 1 and the agent's max_steps (\(agent.maxSteps)), got \(OptionRules.describe(value))"
            )
        }
        return count
    }

    /// The overrides `options` asks for, to be merged over the agent's own
    /// (`agent.options.merging(result)`).
    public static func parse(_ options: JSONValue, for agent: AgentDefinition) throws(RequestOptionsError)
        -> GenerationOptions
    {
        guard let object = options.objectValue else {
            throw RequestOptionsError(
                field: "options", message: "expected an object, got \(OptionRules.describe(options))")
        }
        let context = OptionContext(agent: agent)
        var result = GenerationOptions()
        for (key, value) in object where key != maxStepsKey {
            let field = "options.\(key)"
            guard let rule = OptionRules.rule(key), rule.perRequest else {
                let known = OptionRules.rule(key) != nil ? "is not a per-request option" : "unknown option"
                let hint = Hints.nearest(to: key, among: keys).map { " (did you mean '\($0)'?)" } ?? ""
                throw RequestOptionsError(
                    field: field, message: "\(known)\(hint); allowed: \(keys.joined(separator: ", "))")
            }
            if let reason = rule.unavailable(context) {
                throw RequestOptionsError(field: field, message: "\(reason)")
            }
            do {
                try rule.apply(value, context, &result)
            } catch {
                throw RequestOptionsError(field: field + error.pathText, message: error.message)
            }
        }
        return result
    }
}
