/// How an emulator listens and how strict it is.
public struct EmulatorConfiguration: Sendable {
    /// How an unpaced stream reaches the socket.
    public enum StreamWrites: String, Sendable, CaseIterable {
        /// One write and flush per SSE event, as Mistral streams: the client may read each
        /// event on its own.
        case perEvent = "per-event"
        /// The whole stream in one write: the same events, read by the client in one go. Kept
        /// for the bench row that compares against the first benchmarks.
        case batched
    }

    public var host: String
    /// 0 takes any free port; `MistralEmulatorServer.port` tells which.
    public var port: Int
    /// The bearer token required; nil accepts any non-empty token.
    public var apiKey: String?
    /// Keeps mistral-common's rule from before 2026-04-27: a `user` message right after a `tool`
    /// message is refused with "Unexpected role 'user' after role 'tool'".
    public var strictToolAfterUser: Bool
    public var streamWrites: StreamWrites

    public init(
        host: String = "127.0.0.1", port: Int = 0, apiKey: String? = nil, strictToolAfterUser: Bool = true,
        streamWrites: StreamWrites = .perEvent
    ) {
        self.host = host
        self.port = port
        self.apiKey = apiKey
        self.strictToolAfterUser = strictToolAfterUser
        self.streamWrites = streamWrites
    }
}

/// Counters an end-to-end test reads to check that upstream transfers were closed.
public struct EmulatorStats: Sendable, Equatable, Codable {
    /// Requests received (all endpoints but the stats endpoint itself).
    public var requests: Int
    /// Responses currently being written, streamed or not, including stalled ones.
    public var activeStreams: Int
    public var openConnections: Int

    public init(requests: Int, activeStreams: Int, openConnections: Int) {
        self.requests = requests
        self.activeStreams = activeStreams
        self.openConnections = openConnections
    }

    enum CodingKeys: String, CodingKey {
        case requests
        case activeStreams = "active_streams"
        case openConnections = "open_connections"
    }
}
