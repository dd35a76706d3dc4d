import JSON
import LLM

extension Usage {
    /// The `usage` member of a `done` event.
    /// `cached_tokens` and `connector_tokens` only when Mistral reported them.
    var json: JSONValue {
        var object: JSONObject = [
            "prompt_tokens": .int(Int64(promptTokens)), "completion_tokens": .int(Int64(completionTokens)),
            "total_tokens": .int(Int64(totalTokens)),
        ]
        if cachedTokens > 0 { object["cached_tokens"] = .int(Int64(cachedTokens)) }
        if connectorTokens > 0 { object["connector_tokens"] = .int(Int64(connectorTokens)) }
        return .object(object)
    }
}
