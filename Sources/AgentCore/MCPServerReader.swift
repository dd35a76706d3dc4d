import Tools
import YAML

extension NodeChecker {
    private static let mcpServerKeys = ["command", "env", "timeout", "tools"]

    /// `mcp_servers` of agentd.yaml (contract §3): each server's problems reported at its own
    /// key, and a server with any problem left out.
    mutating func mcpServers(_ node: YAMLNode) -> [String: MCPServerConfig] {
        guard let entries = node.mapping else {
            error(node, "mcp_servers: expected a mapping of server names to servers, got \(node.kindName)")
            return [:]
        }
        var servers: [String: MCPServerConfig] = [:]
        for entry in entries {
            guard let name = string(entry.key, path: "mcp_servers") else { continue }
            let path = "mcp_servers.\(name)"
            guard MCPServerConfig.isValidName(name) else {
                error(
                    entry.key,
                    "\(path): the name must match ^[a-zA-Z0-9_-]{1,\(MCPServerConfig.maxNameLength)}$ without \"__\" and not end in \"_\": the model sees its tools as \(name)__TOOL, which Mistral must accept as function names"
                )
                continue
            }
            if let server = mcpServer(entry.value, name: name, path: path) { servers[name] = server }
        }
        return servers
    }

    private mutating func mcpServer(_ node: YAMLNode, name: String, path: String) -> MCPServerConfig? {
        guard let fields = fields(of: node, path: path, known: Self.mcpServerKeys) else { return nil }
        guard let commandNode = fields["command"] else {
            error(node, "\(path): missing 'command' (the server's argv, its absolute path first)")
            return nil
        }
        guard let command = strings(commandNode, path: "\(path).command", allowSingle: false) else { return nil }
        var server = MCPServerConfig(name: name, command: command.map(\.0))
        var valid = true
        if let node = fields["timeout"] {
            if let timeout = duration(node, path: "\(path).timeout") { server.timeout = timeout } else { valid = false }
        }
        if let node = fields["env"] {
            if let env = stringMap(node, path: "\(path).env") {
                for entry in env { server.env[entry.key] = entry.value }
            } else {
                valid = false
            }
        }
        if let node = fields["tools"] {
            if let tools = strings(node, path: "\(path).tools", allowSingle: false) {
                for (tool, item) in tools
                where !MCPServerConfig.isValidFunctionName(MCPServerConfig.qualifiedName(server: name, tool: tool)) {
                    error(
                        item, "\(path).tools: '\(name)__\(tool)' is not a name Mistral accepts (^[a-zA-Z0-9_-]{1,64}$)")
                    valid = false
                }
                server.tools = tools.map(\.0)
            } else {
                valid = false
            }
        }
        // The same checks as an exec tool's argv, env and timeout: the server is started the same way.
        let asExec = ExecTool(argv: server.command, timeout: server.timeout, env: server.env)
        for problem in asExec.problems(parameters: nil) {
            let at: YAMLNode =
                switch problem.code {
                case .invalidEnvironmentName: fields["env"] ?? commandNode
                case .timeoutNotPositive: fields["timeout"] ?? commandNode
                default: commandNode
                }
            error(at, "\(path): \(String(describing: problem).replacingExecWithCommand)")
            valid = false
        }
        return valid ? server : nil
    }
}

extension String {
    /// ExecToolProblem speaks of `exec`; here the key is `command`.
    fileprivate var replacingExecWithCommand: String {
        hasPrefix("exec ") ? "command " + dropFirst("exec ".count) : self
    }
}
