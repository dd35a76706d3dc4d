/// How an emulator listens and how strict it is.
public struct EmulatorConfiguration: Sendable {
    public var host: String
    /// 0 takes any free port; `MistralEmulatorServer.port` tells which.
    public var port: Int
    /// The bearer token required; nil accepts any non-empty token.
    public var apiKey: String?
    /// Keeps mistral-common's rule from before 2026-04-27: a `user` message right after a `tool`
    /// message is refused with "Unexpected role 'user' after role 'tool'".
    public var strictToolAfterUser: Bool

    public init(host: String = "127.0.0.1", port: Int = 0, apiKey: String? = nil, strictToolAfterUser: Bool = true) {
        self.host = host
        self.port = port
        self.apiKey = apiKey
        self.strictToolAfterUser = strictToolAfterUser
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
