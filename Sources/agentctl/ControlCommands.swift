import AgentCore
import ArgumentParser
import Glibc
import JSON

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the agents agentd serves.")

    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Print the daemon's result line as JSON.") var json = false

    func run() throws {
        let (result, line) = try connection.connect().command("list")
        if json { return Output.raw(line) }
        let style = Style()
        var table = Table(header: ["NAME", "MODE", "MODEL/AGENT_ID", "STATE", "SOCKET", "DESCRIPTION"])
        for agent in result["agents"]?.arrayValue ?? [] {
            table.rows.append([
                agent["name"]?.cellText ?? "-", agent["mode"]?.cellText ?? "-",
                (agent["model"] ?? agent["agent_id"])?.cellText ?? "-", agent["state"]?.cellText ?? "-",
                agent["socket"]?.cellText ?? "-", agent["description"]?.cellText ?? "-",
            ])
        }
        table.styleCell = { column, text in column == 3 ? stateStyle(text, style) : text }
        Output.line(table.render(style: style))
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the daemon's state, counters and last reload.")

    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Print the daemon's result line as JSON.") var json = false

    func run() throws {
        let (result, line) = try connection.connect().command("status")
        if json { return Output.raw(line) }
        let status = result["status"] ?? .null
        let style = Style()
        var summary = [
            "agentd \(status["version"]?.cellText ?? "?")", "pid \(status["pid"]?.cellText ?? "?")",
            "up \(duration(status["uptime_s"]?.doubleValue ?? 0))", "in flight \(status["in_flight"]?.cellText ?? "0")",
        ]
        if let connections = status["connections"] { summary.append("connections \(connections.cellText)") }
        Output.line(style.bold(summary[0]) + "  " + summary.dropFirst().joined(separator: "  "))

        var table = Table(header: [
            "AGENT", "STATE", "REQUESTS", "ERRORS", "IN_FLIGHT", "PROMPT_TOKENS", "COMPLETION_TOKENS",
        ])
        for (name, counters) in status["agents"]?.objectValue ?? [:] {
            table.rows.append(
                [name]
                    + ["state", "requests", "errors", "in_flight", "prompt_tokens", "completion_tokens"].map {
                        counters[$0]?.cellText ?? "-"
                    })
        }
        table.styleCell = { column, text in column == 1 ? stateStyle(text, style) : text }
        Output.line("")
        Output.line(table.render(style: style))
        printMCPServers(status["mcp_servers"]?.arrayValue ?? [], style: style)

        Output.line("")
        guard let reload = status["last_reload"], !reload.isNull else { return Output.line("last reload: none") }
        let verdict = reload["ok"]?.boolValue == true ? style.green("ok") : style.red("failed")
        Output.line("last reload: \(timestamp(reload["time"]?.doubleValue)) \(verdict)")
        for error in reload["errors"]?.arrayValue ?? [] { Output.line("  " + diagnostic(error)) }
    }

    /// One row per MCP server; nothing when none runs.
    private func printMCPServers(_ servers: [JSONValue], style: Style) {
        guard !servers.isEmpty else { return }
        var table = Table(header: ["MCP_SERVER", "STATE", "PID", "TOOLS", "RESTARTS", "REASON"])
        for server in servers {
            let tools = server["tools"]?.arrayValue?.compactMap(\.stringValue) ?? []
            table.rows.append([
                server["name"]?.cellText ?? "?", server["state"]?.cellText ?? "?", server["pid"]?.cellText ?? "-",
                tools.isEmpty ? "-" : tools.joined(separator: ","), server["restarts"]?.cellText ?? "0",
                server["reason"]?.cellText ?? "",
            ])
        }
        table.styleCell = { column, text in
            guard column == 1 else { return text }
            return text == "ready" ? style.green(text) : text == "failed" ? style.red(text) : style.yellow(text)
        }
        Output.line("")
        Output.line(table.render(style: style))
    }

    private func duration(_ seconds: Double) -> String {
        let total = Int(seconds)
        let (days, hours, minutes, rest) = (total / 86400, total % 86400 / 3600, total % 3600 / 60, total % 60)
        if days > 0 { return "\(days)d \(hours)h \(minutes)m" }
        if hours > 0 { return "\(hours)h \(minutes)m \(rest)s" }
        return minutes > 0 ? "\(minutes)m \(rest)s" : "\(rest)s"
    }
}

/// UTC, so the output does not depend on the caller's zone.
func timestamp(_ seconds: Double?) -> String {
    guard let seconds else { return "?" }
    var time = time_t(seconds)
    var parts = tm()
    gmtime_r(&time, &parts)
    var buffer = [CChar](repeating: 0, count: 32)
    let count = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S UTC", &parts)
    return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reload the agent files, as SIGHUP does, and print what changed.",
        discussion: "Exits 1 when any file failed to load; that file's previous definition stays in service.")

    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Print the daemon's result line as JSON.") var json = false

    func run() throws {
        let (result, line) = try connection.connect().command("reload")
        let report = result["reload"] ?? .null
        let errors = report["errors"]?.arrayValue ?? []
        if json {
            Output.raw(line)
        } else {
            let style = Style()
            for key in ["added", "changed", "removed", "unchanged"] {
                let names = report[key]?.arrayValue?.compactMap(\.stringValue) ?? []
                Output.line("\(style.bold(key + ":")) \(names.isEmpty ? "-" : names.joined(separator: ", "))")
            }
            for error in errors { Output.error(Style(descriptor: STDERR_FILENO).red(diagnostic(error))) }
        }
        if !errors.isEmpty {
            throw AgentctlError.requestFailed("reload: \(errors.count) error\(errors.count == 1 ? "" : "s")")
        }
    }
}

/// A reload error `{file,line,column,message}` in the form `agentd --check` prints.
private func diagnostic(_ error: JSONValue) -> String {
    Diagnostic(
        file: error["file"]?.stringValue ?? "?", line: Int(error["line"]?.intValue ?? 0),
        column: Int(error["column"]?.intValue ?? 0), message: error["message"]?.stringValue ?? ""
    ).description
}

private func stateStyle(_ state: String, _ style: Style) -> String {
    state == "ok" ? style.green(state) : style.yellow(state)
}

struct Metrics: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the daemon's metrics in the Prometheus text format.",
        discussion: "The same exposition as GET /metrics on metrics.listen, whether or not that is set.")

    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Print the daemon's result line as JSON.") var json = false

    func run() throws {
        let (result, line) = try connection.connect().command("metrics")
        if json { return Output.raw(line) }
        Output.write(result["text"]?.stringValue ?? "")
    }
}
