import MCPServers
import Sessions

extension DaemonMetrics {
    /// The exposition with the gauges read from the agents served and the open connections now.
    func exposition(registry: AgentRegistry, tracker: ConnectionTracker) -> [UInt8] {
        var agents: [String: (inFlight: Int, queued: Int)] = [:]
        for entry in registry.all {
            agents[entry.runtime.name] = (entry.runtime.counters.inFlight, entry.runtime.limiter.waiting)
        }
        return exposition(LiveState(connections: tracker.connectionCount, agents: agents))
    }

    /// Samples the gauges that other parts own, every `interval` and once at once:
    /// `agentd_sessions` from the session store and `agentd_mcp_server_up` from the MCP
    /// supervisor. Both are behind awaits that the exposition, which is synchronous, cannot
    /// make; a sample a few seconds old is fine for a gauge scraped every 15 s or more.
    func sample(every interval: Duration, sessions: SessionStore, mcp: MCPSupervisor) -> Task<Void, Never> {
        Task {
            repeat {
                if let count = try? await sessions.list().count { setSessions(count) }
                for server in await mcp.status() {
                    guard let name = server["name"]?.stringValue else { continue }
                    setMCPServer(name, up: server["state"] == "ready")
                }
            } while (try? await Task.sleep(for: interval)) != nil
        }
    }
}
