/// Told about a request's upstream exchanges, for its agent's metrics.
///
/// Called on the request's own task, once per HTTP response head and once per retry; an
/// implementation must return at once (an atomic increment), never wait.
public protocol UpstreamObserver: Sendable {
    /// A response head arrived: the 2xx that carries the reply, or the error status that ended
    /// an attempt.
    func upstreamResponded(status: Int)
    /// An attempt failed in a way that is retried, and another one follows after a delay.
    func upstreamRetrying()
}
