import AgentCore
import Logging
import MCPServers
import Synchronization
import Tools

/// The MCP half of a load (contract §6, §9): agentd.yaml's `mcp_servers` read again, the
/// agents loaded against those names, then the servers brought in line with what the agents
/// name. A server that fails to start is an error of the load's report.
final class MCPReload: Sendable {
    let supervisor: MCPSupervisor
    /// Where agentd.yaml was read from at start, and whether `--config` named it.
    private let configFile: String?
    /// The last `mcp_servers` that loaded: an agentd.yaml that fails keeps it in force.
    private let servers: Mutex<[String: MCPServerConfig]>

    init(supervisor: MCPSupervisor, configFile: String?, initial: [String: MCPServerConfig]) {
        self.supervisor = supervisor
        self.configFile = configFile
        self.servers = Mutex(initial)
    }

    /// Loads the agents and applies the servers. `rereadConfig` is false for the first load,
    /// whose agentd.yaml was just read.
    func load(
        into registry: AgentRegistry, agentsDir: String, rereadConfig: Bool, logger: Logger
    ) async -> ReloadReport {
        var configErrors: [Diagnostic] = []
        if rereadConfig {
            switch DaemonConfig.load(path: configFile, explicit: configFile != nil) {
            case .success(let config): servers.withLock { $0 = config.mcpServers }
            case .failure(let list):
                configErrors = list.diagnostics
                for diagnostic in list.diagnostics {
                    logger.error(
                        "Invalid daemon config: keeping the previous mcp_servers",
                        metadata: ["diagnostic": "\(diagnostic)", "file": "\(diagnostic.file)"])
                }
            }
        }
        let configs = servers.withLock { $0 }
        var report = await registry.reload(from: agentsDir, mcpServers: Set(configs.keys), logger: logger)
        report.errors = configErrors + report.errors
        let named = Set(registry.all.flatMap { $0.runtime.definition.mcpServers })
        let file = configFile ?? DaemonConfig.defaultPath
        for problem in await supervisor.apply(configs, named: named) {
            logger.error(
                "MCP server did not start",
                metadata: ["mcp_server": "\(problem.server)", "reason": "\(problem.reason)"])
            report.errors.append(Diagnostic(file: file, line: 1, column: 1, message: problem.description))
        }
        return report
    }
}
