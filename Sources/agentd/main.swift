import AgentCore
import AgentDaemon
import ArgumentParser
import Systemd

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `agentd`: serves the agents of agents.d on Unix sockets (CONTRACT §1, §6).
struct Agentd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agentd",
        abstract: "Serve the LLM agents defined in agents.d on Unix sockets.",
        version: BuildInfo.version)

    @Option(name: .customLong("config"), help: "Daemon configuration file (default: \(DaemonConfig.defaultPath)).")
    var configFile: String?

    @Option(help: "Directory of agent definitions; overrides agents_dir.")
    var agentsDir: String?

    @Option(help: "Directory for the sockets; overrides socket_dir.")
    var socketDir: String?

    @Option(help: "Directory for the sessions database, or `memory`; overrides state_dir.")
    var stateDir: String?

    @Flag(help: "Validate the configuration and every agent file, print all diagnostics, bind nothing.")
    var check = false

    func run() async throws {
        let loaded = DaemonConfig.load(path: configFile, explicit: configFile != nil)
        if check { throw ExitCode(runCheck(loaded)) }
        switch loaded {
        case .failure(let diagnostics):
            printError(diagnostics.description)
            throw ExitCode(78)  // EX_CONFIG
        case .success(let config):
            try await serve(applyingOverrides(to: config))
        }
    }

    /// `--agents-dir`, `--socket-dir` and `--state-dir` win over the file.
    private func applyingOverrides(to config: DaemonConfig) -> DaemonConfig {
        var config = config
        if let agentsDir { config.agentsDir = agentsDir }
        if let socketDir { config.socketDir = socketDir }
        if let stateDir { config.stateDir = stateDir }
        return config
    }

    /// Reports every problem of the config and of every agent file; 0 when there is none.
    private func runCheck(_ loaded: Result<DaemonConfig, DiagnosticList>) -> Int32 {
        var diagnostics: [Diagnostic] = []
        var config = DaemonConfig()
        // An agentd.yaml that failed says nothing of which MCP servers exist.
        var mcpServers: Set<String>?
        switch loaded {
        case .success(let valid):
            config = valid
            mcpServers = Set(valid.mcpServers.keys)
        case .failure(let list): diagnostics += list.diagnostics
        }
        config = applyingOverrides(to: config)
        var agents: [AgentDefinition] = []
        do {
            let directory = try AgentLoader.loadDirectory(config.agentsDir, mcpServers: mcpServers)
            agents = directory.agents
            diagnostics += directory.diagnostics
        } catch {
            diagnostics.append(error)
        }
        for diagnostic in diagnostics { printError(diagnostic.description) }
        guard diagnostics.isEmpty else { return 1 }
        print("agentd: configuration OK, \(agents.count) agent(s): \(agents.map(\.summary).joined(separator: "; "))")
        return 0
    }

    /// Runs the daemon until it is told to stop.
    private func serve(_ config: DaemonConfig) async throws {
        LogDestination.bootstrap(level: config.logLevel.swiftLogLevel, identifier: "agentd")
        throw ExitCode(await Daemon(config: config, configFile: configFile).run())
    }
}

private func printError(_ text: String) {
    var line = text + "\n"
    line.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

// Spelled out rather than `await Agentd.main()`, which top-level code resolves to the
// synchronous overload (and so to the default `run()` that only prints help).
do {
    let command = try Agentd.parse()
    try await command.run()
} catch {
    Agentd.exit(withError: error)
}
