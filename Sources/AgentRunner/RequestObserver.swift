public import LLM

/// Told what a request does as it runs, for its agent's metrics: its upstream exchanges (the
/// LLM layer reports those), the moment its first text went to the client, and each server
/// tool it ran. How the request ended is in its `RequestReport`.
///
/// Called on the request's own task; an implementation must return at once, never wait.
public protocol RequestObserver: UpstreamObserver {
    /// The first reply text was handed to the client, `elapsed` after the request was received
    /// (the queue wait included: what the client waited).
    func firstText(after elapsed: Duration)
    /// A server tool ran; `ok` as in its `tool_result`.
    func toolRan(_ name: String, ok: Bool)
}

extension LLMEvent {
    /// Reply text for the client: a delta, or the whole text of a reply that was not streamed.
    var carriesText: Bool {
        switch self {
        case .text(let text): !text.isEmpty
        case .done(let completion): !completion.text.isEmpty
        default: false
        }
    }
}
