import AgentCore
import ArgumentParser
import Glibc

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check agent files or directories offline, with the diagnostics of `agentd --check`.")

    @Argument(help: "Agent files or directories of them (default: /etc/agentd/agents.d).")
    var paths: [String] = []

    func run() throws {
        var diagnostics: [Diagnostic] = []
        var agents: [AgentDefinition] = []
        for path in paths.isEmpty ? [DaemonConfig().agentsDir] : paths {
            if isDirectory(path) {
                do {
                    let directory = try AgentLoader.loadDirectory(path)
                    agents += directory.agents
                    diagnostics += directory.diagnostics
                } catch {
                    diagnostics.append(error)
                }
            } else {
                switch AgentLoader.loadFile(path) {
                case .success(let agent): agents.append(agent)
                case .failure(let list): diagnostics += list.diagnostics
                }
            }
        }
        for agent in agents { print("\(agent.file): ok: \(agent.summary)") }
        for diagnostic in diagnostics { Output.error(diagnostic.description) }
        if !diagnostics.isEmpty { throw AgentctlExit.invalidConfig }
    }

    private func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }
}
