/// The closed list of error codes a client can receive (CONTRACT §4).
public enum ErrorCode: String, Sendable, CaseIterable, Codable {
    case badRequest = "bad_request"
    case requestTooLarge = "request_too_large"
    case unknownRequest = "unknown_request"
    case unknownAgent = "unknown_agent"
    case forbidden
    case overloaded
    case cancelled
    case timeout
    case upstreamAuth = "upstream_auth"
    case upstreamRateLimited = "upstream_rate_limited"
    case upstreamRejected = "upstream_rejected"
    case upstreamUnavailable = "upstream_unavailable"
    case upstreamProtocol = "upstream_protocol"
    case agentError = "agent_error"
    case shuttingDown = "shutting_down"
    /// Another request of the same session is running; retryable.
    case sessionBusy = "session_busy"
    /// `max_steps` model calls were made and the model still wants tools.
    case stepLimit = "step_limit"
    case `internal`
}

/// The `error` member of an error event.
public struct ErrorInfo: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: ErrorCode
    public var message: String
    /// True only where sending the same request later may succeed.
    public var retryable: Bool
    /// The upstream HTTP status, when there was one.
    public var status: Int?
    /// How long Mistral asked to wait (its `Retry-After`), on `upstream_rate_limited`.
    public var retryAfterSeconds: Int?

    public init(
        code: ErrorCode, message: String, retryable: Bool = false, status: Int? = nil, retryAfterSeconds: Int? = nil
    ) {
        self.code = code
        self.message = message
        self.retryable = retryable
        self.status = status
        self.retryAfterSeconds = retryAfterSeconds
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
