import JSON
import LLM

extension Usage {
    /// The `usage` member of a `done` event.
    var json: JSONValue {
        [
            "prompt_tokens": .int(Int64(promptTokens)), "completion_tokens": .int(Int64(completionTokens)),
            "total_tokens": .int(Int64(totalTokens)),
        ]
    }
}
