import AgentProtocol
import AgentRunner
import NIOCore
import Synchronization

/// Every open connection and request in flight, daemon-wide: enforces `max_connections` and
/// lets shutdown end what is left.
final class ConnectionTracker: Sendable {
    struct Registration: Sendable {
        fileprivate let number: UInt64
    }

    private struct State {
        var limit: Int
        var nextNumber: UInt64 = 0
        var connections: [UInt64: (state: ConnectionState, channel: any Channel)] = [:]
        var requests: [ObjectIdentifier: RequestHandle] = [:]
        var shuttingDown = false
    }

    private let state: Mutex<State>
    private let whenIdle: @Sendable (ConnectionTracker) -> Void

    /// `whenIdle` runs each time the last request in flight ends.
    init(limit: Int, whenIdle: @escaping @Sendable (ConnectionTracker) -> Void = { _ in }) {
        state = Mutex(State(limit: limit))
        self.whenIdle = whenIdle
    }

    var limit: Int { state.withLock { $0.limit } }
    var connectionCount: Int { state.withLock { $0.connections.count } }
    var inFlight: Int { state.withLock { $0.requests.count } }

    /// Nil when `max_connections` are already open.
    func open(_ connection: ConnectionState, channel: any Channel) -> Registration? {
        state.withLock { state in
            guard state.connections.count < state.limit else { return nil }
            state.nextNumber += 1
            state.connections[state.nextNumber] = (connection, channel)
            return Registration(number: state.nextNumber)
        }
    }

    func close(_ registration: Registration) {
        _ = state.withLock { $0.connections.removeValue(forKey: registration.number) }
    }

    func started(_ handle: RequestHandle) {
        state.withLock { $0.requests[ObjectIdentifier(handle)] = handle }
    }

    func finished(_ handle: RequestHandle) {
        let idle = state.withLock { state in
            state.requests.removeValue(forKey: ObjectIdentifier(handle)) != nil && state.requests.isEmpty
        }
        if idle { whenIdle(self) }
    }

    /// True once no request is in flight, false if some still are after `grace`. Polls: it
    /// runs once, at shutdown, and must give up on time whatever the requests do.
    func waitUntilDrained(within grace: Duration) async -> Bool {
        let deadline = ContinuousClock.now + grace
        while inFlight > 0 {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }

    /// Set at shutdown: requests arriving on connections still open are refused.
    var isShuttingDown: Bool { state.withLock { $0.shuttingDown } }

    func beginShutdown() { state.withLock { $0.shuttingDown = true } }

    /// Ends every request still running with `reason`.
    func cancelAll(reason: ErrorInfo) {
        let handles = state.withLock { Array($0.requests.values) }
        for handle in handles { handle.cancel(reason) }
    }

    /// Closes every connection (after their requests have sent their last events).
    func closeAll() {
        let channels = state.withLock { $0.connections.values.map(\.channel) }
        for channel in channels { channel.close(promise: nil) }
    }
}
