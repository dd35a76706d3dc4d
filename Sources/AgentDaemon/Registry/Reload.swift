import AgentCore
import Glibc
import JSON
import Logging

/// The outcome of a reload (or of the first load at start), as `reload` reports it.
struct ReloadReport: Sendable {
    var time: Double
    var added: [String] = []
    var changed: [String] = []
    var removed: [String] = []
    var unchanged: [String] = []
    var errors: [Diagnostic] = []

    var ok: Bool { errors.isEmpty }

    var json: JSONValue {
        [
            "added": .array(added.map(JSONValue.string)), "changed": .array(changed.map(JSONValue.string)),
            "removed": .array(removed.map(JSONValue.string)), "unchanged": .array(unchanged.map(JSONValue.string)),
            "errors": .array(errors.map(\.json)),
        ]
    }
}

extension Diagnostic {
    var json: JSONValue {
        [
            "file": .string(file), "line": .int(Int64(line)), "column": .int(Int64(column)),
            "message": .string(message),
        ]
    }
}

extension AgentRegistry {
    /// Loads the agents directory and applies it; a directory that cannot be read keeps
    /// everything as it was.
    func reload(from agentsDir: String, mcpServers: Set<String>? = nil, logger: Logger) async -> ReloadReport {
        let directory: AgentDirectory
        do {
            directory = try AgentLoader.loadDirectory(agentsDir, mcpServers: mcpServers)
        } catch {
            var report = ReloadReport(time: Double(time(nil)))
            report.errors = [error]
            report.unchanged = all.map(\.runtime.name)
            logger.error("Reload failed: agents directory unreadable", metadata: ["error": "\(error)"])
            return report
        }
        let report = await apply(directory)
        for diagnostic in report.errors {
            logger.error(
                "Invalid agent definition", metadata: ["diagnostic": "\(diagnostic)", "file": "\(diagnostic.file)"])
        }
        logger.notice(
            "Agents loaded",
            metadata: [
                "reload.result": "\(report.ok ? "ok" : "errors")", "added": "\(report.added.count)",
                "changed": "\(report.changed.count)", "removed": "\(report.removed.count)",
                "unchanged": "\(report.unchanged.count)", "errors": "\(report.errors.count)",
            ])
        return report
    }

    /// The `STATUS=` line sent with READY after the first load (`verb` "Serving") or a reload.
    func readyStatus(after report: ReloadReport, verb: String) -> String {
        let count = all.count
        let base = "\(verb) \(count) agent\(count == 1 ? "" : "s")"
        return report.ok ? base : "\(base); \(report.errors.count) file error(s), see journal"
    }
}
