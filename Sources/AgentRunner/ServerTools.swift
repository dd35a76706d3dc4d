import AgentCore
import AgentProtocol
import Basics
import JSON
import LLM
import Logging
import MCPServers
import Tools

/// Runs the tools agentd implements for an agent (CONTRACT §9): its exec tools and the tools
/// of the MCP servers it names (`<server>__<tool>`). A call to a tool the agent does not
/// implement is a client tool call, for the client to answer.
public struct ServerTools: Sendable {
    /// Where a tool runs when it names no `cwd`: the state directory.
    let defaultWorkingDirectory: String
    let logger: Logger
    let logContent: Bool
    /// The MCP servers' tools; nil where none run (unit tests).
    let mcp: MCPSupervisor?

    public init(defaultWorkingDirectory: String, logger: Logger, logContent: Bool, mcp: MCPSupervisor? = nil) {
        self.defaultWorkingDirectory = defaultWorkingDirectory
        self.logger = logger
        self.logContent = logContent
        self.mcp = mcp
    }

    func implements(_ call: ToolCall, for agent: AgentDefinition) -> Bool {
        agent.execTools[call.name] != nil || mcpTarget(of: call, for: agent) != nil
    }

    /// The server and tool a call names when its server is one the agent names. A call to a
    /// server that is down is still agentd's to answer (`ok:false`), never the client's.
    private func mcpTarget(of call: ToolCall, for agent: AgentDefinition) -> (server: String, tool: String)? {
        guard let target = MCPServerConfig.split(call.name), agent.mcpServers.contains(target.server) else {
            return nil
        }
        return target
    }

    /// The function tools the model is offered from the agent's MCP servers, as they are now
    /// (normal mode; in agent mode the Mistral agent declares its functions).
    func mcpToolSpecs(for agent: AgentDefinition) async -> [ToolSpec] {
        guard let mcp, !agent.mcpServers.isEmpty else { return [] }
        var specs: [ToolSpec] = []
        for server in agent.mcpServers {
            for tool in await mcp.tools(of: server) {
                specs.append(
                    ToolSpec(name: tool.qualifiedName, description: tool.description, parameters: tool.inputSchema))
            }
        }
        return specs
    }

    /// Runs `call` to its end, whatever the tool does: a failure is a result the model sees.
    /// Cancelling the calling task ends an exec tool's process group, and sends an MCP server
    /// `notifications/cancelled`.
    func run(_ call: ToolCall, for agent: AgentDefinition, metadata: Logger.Metadata) async -> ToolResult {
        if let target = mcpTarget(of: call, for: agent), agent.execTools[call.name] == nil {
            return await runMCP(call, target, metadata: metadata)
        }
        guard let tool = agent.execTools[call.name] else {
            return ToolResult(
                toolCallID: call.id, name: call.name, ok: false, output: "unknown tool \(call.name)",
                durationMilliseconds: 0)
        }
        let toolLogger = logger(for: call, metadata: metadata)
        let outcome = await ExecToolRunner(logger: toolLogger).run(
            tool, arguments: Self.argumentObject(call.arguments), defaultCwd: defaultWorkingDirectory)
        return result(
            of: call, outcome, logger: toolLogger,
            fields: ["tool.exit_status": "\(outcome.exitStatus.map { "\($0)" } ?? "not started")"])
    }

    /// The request's logger with the call's tool named, for its run's lines and its stderr.
    private func logger(for call: ToolCall, metadata: Logger.Metadata) -> Logger {
        var toolLogger = logger
        for (key, value) in metadata { toolLogger[metadataKey: key] = value }
        toolLogger[metadataKey: "tool"] = "\(call.name)"
        return toolLogger
    }

    /// Logs a run (its arguments and output only with `log_content`) and makes its result.
    /// `failureIsContent`: the failure's reason is the tool's own text (an MCP server's error
    /// message, which may quote the arguments), not agentd's.
    private func result(
        of call: ToolCall, _ outcome: ToolOutcome, logger: Logger, fields: Logger.Metadata = [:],
        failureIsContent: Bool = false
    ) -> ToolResult {
        var fields = fields
        fields["tool.ok"] = "\(outcome.ok)"
        fields["duration_ms"] = "\(outcome.duration.milliseconds)"
        if let reason = outcome.failureReason, logContent || !failureIsContent { fields["tool.failure"] = "\(reason)" }
        if logContent {
            fields["tool.arguments"] = "\(call.arguments.jsonText)"
            fields["tool.output"] = "\(outcome.output)"
        }
        logger.info("Tool ran", metadata: fields)
        return ToolResult(
            toolCallID: call.id, name: call.name, ok: outcome.ok, output: outcome.output,
            durationMilliseconds: outcome.duration.milliseconds)
    }

    /// A call to an MCP server's tool, logged like an exec tool's run with `mcp_server` added.
    private func runMCP(
        _ call: ToolCall, _ target: (server: String, tool: String), metadata: Logger.Metadata
    ) async -> ToolResult {
        var toolLogger = logger(for: call, metadata: metadata)
        toolLogger[metadataKey: "mcp_server"] = "\(target.server)"
        let outcome: ToolOutcome
        if let mcp, let arguments = Self.argumentObject(call.arguments).objectValue {
            outcome = await mcp.call(server: target.server, tool: target.tool, arguments: arguments)
        } else {
            let reason = mcp == nil ? "MCP server \(target.server) is not running" : "arguments are not an object"
            outcome = ToolOutcome(
                ok: false, output: reason, failureReason: reason, exitStatus: nil, duration: .zero, outputCut: false)
        }
        return result(of: call, outcome, logger: toolLogger, failureIsContent: true)
    }

    /// Mistral sends arguments as JSON text; the tool gets the object it holds.
    private static func argumentObject(_ arguments: JSONValue) -> JSONValue {
        guard case .string(let text) = arguments else { return arguments }
        return (try? JSONParser.parse(text)) ?? arguments
    }
}
