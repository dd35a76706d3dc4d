import AgentCore
import AgentProtocol
import Basics
import JSON
import Logging
import Tools

/// Runs the tools agentd implements for an agent (CONTRACT §9): its exec tools. A call to a
/// tool the agent does not implement is a client tool call, for the client to answer.
public struct ServerTools: Sendable {
    /// Where a tool runs when it names no `cwd`: the state directory.
    let defaultWorkingDirectory: String
    let logger: Logger
    let logContent: Bool

    public init(defaultWorkingDirectory: String, logger: Logger, logContent: Bool) {
        self.defaultWorkingDirectory = defaultWorkingDirectory
        self.logger = logger
        self.logContent = logContent
    }

    func implements(_ call: ToolCall, for agent: AgentDefinition) -> Bool {
        agent.execTools[call.name] != nil
    }

    /// Runs `call` to its end, whatever the tool does: a failure is a result the model sees.
    /// Cancelling the calling task ends the tool's process group.
    func run(_ call: ToolCall, for agent: AgentDefinition, metadata: Logger.Metadata) async -> ToolResult {
        guard let tool = agent.execTools[call.name] else {
            return ToolResult(
                toolCallID: call.id, name: call.name, ok: false, output: "unknown tool \(call.name)",
                durationMilliseconds: 0)
        }
        var toolLogger = logger
        for (key, value) in metadata { toolLogger[metadataKey: key] = value }
        toolLogger[metadataKey: "tool"] = "\(call.name)"
        let outcome = await ExecToolRunner(logger: toolLogger).run(
            tool, arguments: Self.argumentObject(call.arguments), defaultCwd: defaultWorkingDirectory)
        var fields: Logger.Metadata = [
            "tool.exit_status": "\(outcome.exitStatus.map { "\($0)" } ?? "not started")",
            "tool.ok": "\(outcome.ok)", "duration_ms": "\(outcome.duration.milliseconds)",
        ]
        if let reason = outcome.failureReason { fields["tool.failure"] = "\(reason)" }
        if logContent {
            fields["tool.arguments"] = "\(call.arguments.jsonText)"
            fields["tool.output"] = "\(outcome.output)"
        }
        toolLogger.info("Tool ran", metadata: fields)
        return ToolResult(
            toolCallID: call.id, name: call.name, ok: outcome.ok, output: outcome.output,
            durationMilliseconds: outcome.duration.milliseconds)
    }

    /// Mistral sends arguments as JSON text; the tool gets the object it holds.
    private static func argumentObject(_ arguments: JSONValue) -> JSONValue {
        guard case .string(let text) = arguments else { return arguments }
        return (try? JSONParser.parse(text)) ?? arguments
    }
}
