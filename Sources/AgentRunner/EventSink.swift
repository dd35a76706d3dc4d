import JSON

/// Where a request's events go: a connection's outbound side.
public protocol EventSink: Sendable {
    /// Writes the events' lines in one go. Suspends while the client is not reading
    /// (back-pressure); throws when it is gone.
    func send(_ events: [JSONValue]) async throws
}

extension EventSink {
    public func send(_ event: JSONValue) async throws {
        try await send([event])
    }
}

/// The client stopped reading for good: its connection is gone.
public struct SinkClosed: Error {
    public init() {}
}
