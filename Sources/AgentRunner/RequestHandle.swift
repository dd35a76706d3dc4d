import AgentProtocol
import Synchronization

/// The cancel switch of one request in flight.
///
/// Whoever ends a request early says why (the client's `cancel`, its disconnect, the timeout,
/// shutdown); the first reason wins and becomes the code of the request's terminal event.
public final class RequestHandle: Sendable {
    private let state = Mutex<(reason: ErrorInfo?, task: Task<Void, Never>?)>((nil, nil))

    /// Why the request was ended early, if it was.
    public var cancellationReason: ErrorInfo? { state.withLock { $0.reason } }

    public init() {}

    public func attach(_ task: Task<Void, Never>) {
        let cancelNow = state.withLock { state in
            state.task = task
            return state.reason != nil
        }
        if cancelNow { task.cancel() }
    }

    public func cancel(_ reason: ErrorInfo) {
        let task = state.withLock { state -> Task<Void, Never>? in
            if state.reason == nil { state.reason = reason }
            return state.task
        }
        task?.cancel()
    }
}

extension ErrorInfo {
    public static let cancelledByClient = ErrorInfo(code: .cancelled, message: "request cancelled by the client")
    public static let clientDisconnected = ErrorInfo(code: .cancelled, message: "client disconnected")
    public static let shuttingDown = ErrorInfo(
        code: .shuttingDown, message: "agentd is shutting down; the request did not finish within shutdown_grace",
        retryable: true)
}
