/// Where one supervised MCP server stands, and every transition between its states (STYLE
/// habit 10): the supervisor reports what happened, this says what state follows and whether
/// and when to start the server again.
public struct MCPServerLifecycle: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        /// Spawned, or about to be; the handshake (`initialize`, `tools/list`) is under way.
        case starting
        /// Initialised; its tools are offered.
        case ready
        /// It exited, could not be started or failed its handshake; a restart is scheduled
        /// unless it was stopped.
        case failed(reason: String)
        /// Stopped by agentd (reload, shutdown): final.
        case stopped

        /// `state` in `status`.
        public var listed: String {
            switch self {
            case .starting: "starting"
            case .ready: "ready"
            case .failed: "failed"
            case .stopped: "stopped"
            }
        }
    }

    public enum Event: Sendable, Equatable {
        case spawned(pid: Int32)
        case spawnFailed(reason: String)
        case handshakeSucceeded
        case handshakeFailed(reason: String)
        /// The process was reaped, `uptime` after it was spawned.
        case exited(reason: String, uptime: Duration)
        /// The backoff is over: the server is started again.
        case restarting
        case stopRequested
    }

    /// The first restart waits this long; each one after doubles it, up to ``maxBackoff``.
    public static let initialBackoff: Duration = .seconds(1)
    public static let maxBackoff: Duration = .seconds(60)

    public private(set) var state: State = .starting
    public private(set) var pid: Int32?
    public private(set) var restarts = 0
    /// How long the next restart waits.
    public private(set) var backoff = MCPServerLifecycle.initialBackoff

    public init() {}

    /// Applies `event`; returns how long to wait before starting the server again, when it is
    /// to be started again.
    public mutating func handle(_ event: Event) -> Duration? {
        switch (state, event) {
        case (.stopped, _):
            if case .exited = event { pid = nil }
            return nil
        case (_, .stopRequested):
            state = .stopped
            return nil
        case (_, .spawned(let pid)):
            self.pid = pid
            state = .starting
            return nil
        case (_, .handshakeSucceeded):
            state = .ready
            return nil
        case (_, .handshakeFailed(let reason)):
            // The process is ended next; its exit then schedules the restart, and this reason,
            // not the exit's, is what `status` shows.
            state = .failed(reason: reason)
            return nil
        case (_, .spawnFailed(let reason)):
            pid = nil
            state = .failed(reason: reason)
            return scheduleRestart()
        case (_, .exited(let reason, let uptime)):
            pid = nil
            if case .failed = state {} else { state = .failed(reason: reason) }
            // A server that served longer than the longest backoff was healthy: its crash
            // starts the backoff over instead of inheriting an earlier crash loop's delay.
            if uptime > Self.maxBackoff { backoff = Self.initialBackoff }
            return scheduleRestart()
        case (_, .restarting):
            restarts += 1
            state = .starting
            return nil
        }
    }

    private mutating func scheduleRestart() -> Duration {
        let delay = backoff
        backoff = min(backoff * 2, Self.maxBackoff)
        return delay
    }
}
