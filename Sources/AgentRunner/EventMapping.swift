import AgentCore
import AgentProtocol
import JSON
import LLM

/// How one request's reply becomes its events: what streams (only with `stream: true`), what
/// `reasoning: hide` keeps back, and what `done` adds.
struct EventMapping {
    let request: ChatRequest
    let reasoning: ReasoningVisibility

    /// The event a streamed piece of the reply is sent as; nil when it is not sent.
    func streamed(_ event: LLMEvent) -> JSONValue? {
        guard request.stream else { return nil }
        let id = request.id
        switch event {
        case .text(let text): return Event.delta(id: id, text: text)
        case .reasoning(let text): return reasoning == .stream ? Event.reasoning(id: id, text: text) : nil
        case .citation(let citation): return Event.citation(id: id, citation)
        case .file(let file): return Event.file(id: id, file)
        case .toolExecution(let execution): return Event.toolExecution(id: id, execution)
        case .handoff(let handoff): return Event.handoff(id: id, handoff)
        case .toolCall(let call): return Event.toolCall(id: id, call: call)
        case .done: return nil
        }
    }

    /// Appends the events a batch of the reply is sent as to `lines`, and returns the reply's
    /// final event if the batch ends with it. Not inlined: its temporaries would take room in
    /// the frame of the request's `deliver` closure, which every streaming request holds.
    @inline(never)
    func append(_ batch: [LLMEvent], to lines: inout [JSONValue]) -> Completion? {
        var final: Completion?
        for event in batch {
            if case .done(let done) = event {
                final = done
            } else if let line = streamed(event) {
                lines.append(line)
            }
        }
        return final
    }

    /// The terminal event of a request that ended well: `completion` sums its model calls,
    /// `messages` are the ones it added to the history.
    func done(_ completion: Completion, responseFormat: ResponseFormat?, steps: Int, messages: [ChatMessage])
        -> JSONValue
    {
        Event.done(
            id: request.id, text: completion.text, toolCalls: completion.toolCalls,
            finishReason: completion.finishReason, usage: completion.usage.json, model: completion.model,
            extras: Event.DoneExtras(
                reasoning: reasoning == .stream ? completion.reasoning : "", citations: completion.citations,
                files: completion.files, json: Self.parsedJSON(completion.text, asked: responseFormat), steps: steps,
                messages: messages, session: request.session))
    }

    /// The reply as JSON, when the request asked for JSON and the reply parses.
    private static func parsedJSON(_ text: String, asked format: ResponseFormat?) -> JSONValue? {
        switch format {
        case .jsonObject?, .jsonSchema?: try? JSONParser.parse(text)
        case .text?, nil: nil
        }
    }
}
