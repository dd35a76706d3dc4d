extension DaemonMetrics {
    /// The exposition with the gauges read from the agents served and the open connections now.
    func exposition(registry: AgentRegistry, tracker: ConnectionTracker) -> [UInt8] {
        var agents: [String: (inFlight: Int, queued: Int)] = [:]
        for entry in registry.all {
            agents[entry.runtime.name] = (entry.runtime.counters.inFlight, entry.runtime.limiter.waiting)
        }
        return exposition(LiveState(connections: tracker.connectionCount, agents: agents))
    }
}
