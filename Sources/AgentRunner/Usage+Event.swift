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

extension Usage {
    /// Both calls' counts: a request's usage is summed over its model calls.
    func adding(_ other: Usage) -> Usage {
        Usage(
            promptTokens: promptTokens + other.promptTokens,
            completionTokens: completionTokens + other.completionTokens,
            totalTokens: totalTokens + other.totalTokens, cachedTokens: cachedTokens + other.cachedTokens,
            connectorTokens: connectorTokens + other.connectorTokens)
    }
}

extension Completion {
    /// This reply followed by `next`, the next model call of the same request: texts and
    /// reasoning joined, usage summed, the rest from `next`.
    func adding(_ next: Completion) -> Completion {
        Completion(
            text: text + next.text, toolCalls: next.toolCalls, finishReason: next.finishReason,
            usage: usage.adding(next.usage), model: next.model ?? model, reasoning: reasoning + next.reasoning,
            citations: citations + next.citations, files: files + next.files,
            rateLimitsRemaining: next.rateLimitsRemaining.isEmpty ? rateLimitsRemaining : next.rateLimitsRemaining)
    }
}
