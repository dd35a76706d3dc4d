import ArgumentParser
import Glibc
import JSON

struct Sessions: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the sessions agentd keeps, of every agent or of one.",
        discussion: "SIZE is the stored messages' size; UPDATED is the last use, EXPIRES when the ttl ends it.")

    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Print the daemon's result line as JSON.") var json = false

    @Argument(help: "Only this agent's sessions.", completion: .custom(ConnectionOptions.completeAgentName))
    var agent: String?

    func run() throws {
        let (result, line) = try connection.connect().command("sessions", agent.map { ["agent": .string($0)] } ?? [:])
        if json { return Output.raw(line) }
        var table = Table(header: ["AGENT", "SESSION", "UID", "MESSAGES", "SIZE", "UPDATED", "EXPIRES"])
        for session in result["sessions"]?.arrayValue ?? [] {
            table.rows.append([
                session["agent"]?.cellText ?? "-", session["session"]?.cellText ?? "-", session["uid"]?.cellText ?? "-",
                session["messages"]?.cellText ?? "-", size(session["bytes"]?.intValue ?? 0),
                timestamp(session["updated"]?.doubleValue), timestamp(session["expires"]?.doubleValue),
            ])
        }
        Output.line(table.render(style: Style()))
    }

    private func size(_ bytes: Int64) -> String {
        if bytes < 1024 { return "\(bytes) B" }
        let units = ["KiB", "MiB", "GiB"]
        var value = Double(bytes) / 1024
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return "\((value * 10).rounded() / 10) \(units[unit])"
    }
}

struct Session: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show or forget one session.", subcommands: [Show.self, Forget.self])

    /// The session a subcommand names: its agent, its name and whose it is.
    struct Target: ParsableArguments {
        @Option(
            help: ArgumentHelp(
                "The uid that owns the session (default: yours, as `agentctl chat --session` uses).", valueName: "uid"))
        var uid: UInt32?

        @Argument(help: "The agent's name.", completion: .custom(ConnectionOptions.completeAgentName))
        var agent: String

        @Argument(help: "The session's name.") var name: String

        var fields: JSONObject {
            var fields: JSONObject = ["agent": .string(agent), "session": .string(name)]
            if let uid { fields["uid"] = .int(Int64(uid)) }
            return fields
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a session's conversation, oldest message first.")

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var target: Target
        @Flag(help: "Print the daemon's result line as JSON.") var json = false

        func run() throws {
            let (result, line) = try connection.connect().command("session", target.fields)
            if json { return Output.raw(line) }
            let messages = result["messages"]?.arrayValue ?? []
            let style = Style()
            if messages.isEmpty { return Output.error("agentctl: session \(target.name) of \(target.agent) is empty") }
            for message in messages { Output.line(Self.render(message, style: style)) }
        }

        /// `role: text`, tool calls as `name(arguments) [id]` and results with the call they answer.
        static func render(_ message: JSONValue, style: Style) -> String {
            let role = message["role"]?.stringValue ?? "?"
            var lines: [String] = []
            if let content = message["content"]?.stringValue, !content.isEmpty {
                let label = role == "tool" ? message["name"]?.stringValue.map { "tool \($0)" } ?? "tool" : role
                let answers = message["tool_call_id"]?.stringValue.map { style.dim(" [\($0)]") } ?? ""
                lines.append(style.bold(label) + answers + style.bold(":") + " " + content)
            }
            for call in message["tool_calls"]?.arrayValue ?? [] {
                let arguments = call["arguments"].map { $0.stringValue ?? $0.jsonText } ?? "{}"
                let id = call["id"]?.stringValue.map { style.dim(" [\($0)]") } ?? ""
                lines.append(
                    style.bold("\(role):") + " " + style.dim("calls ") + (call["name"]?.stringValue ?? "?")
                        + "(\(arguments))" + id)
            }
            return lines.joined(separator: "\n")
        }
    }

    struct Forget: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a session; exits 1 when there was none.")

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var target: Target
        @Flag(help: "Print the daemon's result line as JSON.") var json = false

        func run() throws {
            let (result, line) = try connection.connect().command("forget", target.fields)
            if json { Output.raw(line) }
            guard result["forgotten"] == true else {
                throw AgentctlError.requestFailed("no session \(target.name) of \(target.agent) to forget")
            }
            if !json { Output.line("forgot session \(target.name) of \(target.agent)") }
        }
    }
}
