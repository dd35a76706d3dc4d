/// What the request runner needs of an LLM: one call, its reply handed over as it arrives.
/// `MistralClient` is the real one; the runner's tests use a scripted fake.
public protocol LLMClient: Sendable {
    /// Runs `request` and hands its reply to `deliver` in batches (never empty): `.text`
    /// deltas, then each `.toolCall`, then `.done` last. A batch holds what one read of the
    /// upstream decoded to, so a reply that arrives at once costs the caller one call.
    ///
    /// `deliver` runs in the caller's task: while it waits (a client that is not reading), the
    /// upstream read waits too, so nothing is buffered without bound. Whatever `deliver` throws
    /// ends the call with that same error; a failure of the request itself is an `ErrorInfo`
    /// with a contract error code.
    ///
    /// `answered` runs when an attempt's 2xx head has arrived ahead of its body: a consumer that
    /// announces the reply can do it then, and otherwise together with the first batch. It may
    /// run again for a retried attempt; what it throws ends the call as `deliver`'s errors do.
    func run(
        _ request: LLMRequest, answered: () async throws -> Void, deliver: ([LLMEvent]) async throws -> Void
    ) async throws
}
