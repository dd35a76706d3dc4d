import JSON
import Logging
import Synchronization
import Tools

/// Every MCP server agentd runs (contract §9): one process per configured server that a
/// loaded agent names, started when first named, replaced when its configuration changes
/// (once its calls have finished), stopped when no agent names it any more.
public final class MCPSupervisor: Sendable {
    private let servers = Mutex<[String: MCPServerProcess]>([:])
    /// Replaced or unnamed servers finishing their calls; shutdown stops them too.
    private let retiring = Mutex<[ObjectIdentifier: MCPServerProcess]>([:])
    private let clientVersion: String
    private let logger: Logger

    public init(clientVersion: String, logger: Logger) {
        self.clientVersion = clientVersion
        self.logger = logger
    }

    /// A server that a load named and that did not get ready, for the load's report.
    public struct StartProblem: Sendable, Equatable, CustomStringConvertible {
        public var server: String
        public var reason: String
        public var description: String { "MCP server '\(server)' did not start: \(reason)" }
    }

    /// Brings the running servers in line with `configs` and the names loaded agents use.
    /// Returns once every server it started has finished its first handshake, with a problem
    /// for each that is not ready.
    public func apply(_ configs: [String: MCPServerConfig], named: Set<String>) async -> [StartProblem] {
        let current = servers.withLock { $0 }
        var started: [MCPServerProcess] = []
        for (name, process) in current where !(named.contains(name) && configs[name] == process.config) {
            servers.withLock { _ = $0.removeValue(forKey: name) }
            retiring.withLock { $0[ObjectIdentifier(process)] = process }
            logger.notice(
                configs[name] != nil && named.contains(name)
                    ? "MCP server changed: replacing it" : "MCP server no longer named: stopping it",
                metadata: ["mcp_server": "\(name)"])
            // New calls go to the replacement at once; the old process ends after its own.
            Task {
                await process.waitUntilIdle()
                await process.stop()
                retiring.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(process)) }
            }
        }
        for name in named.sorted() {
            guard let config = configs[name], servers.withLock({ $0[name] == nil }) else { continue }
            let process = MCPServerProcess(config: config, clientVersion: clientVersion, logger: logger)
            servers.withLock { $0[name] = process }
            started.append(process)
        }
        await withTaskGroup(of: Void.self) { group in
            for process in started { group.addTask { await process.start() } }
        }
        var problems: [StartProblem] = []
        for process in started {
            if case .failed(let reason) = await process.state {
                problems.append(StartProblem(server: process.config.name, reason: reason))
            }
        }
        return problems
    }

    /// The tools `server` offers now; none while it is not ready.
    public func tools(of server: String) async -> [MCPTool] {
        guard let process = servers.withLock({ $0[server] }) else { return [] }
        return await process.tools
    }

    /// Calls `tool` of `server`; `ok:false` when the server is not running or the call fails.
    public func call(server: String, tool: String, arguments: JSONObject) async -> ToolOutcome {
        guard let process = servers.withLock({ $0[server] }) else {
            return ToolOutcome(
                ok: false, output: "MCP server \(server) is not running", failureReason: "MCP server not running",
                exitStatus: nil, duration: .zero, outputCut: false)
        }
        return await process.call(tool, arguments: arguments)
    }

    /// `status`'s entry per server, sorted by name.
    public func status() async -> [JSONValue] {
        let processes = servers.withLock { $0.values.sorted { $0.config.name < $1.config.name } }
        var entries: [JSONValue] = []
        for process in processes {
            let snapshot = await process.snapshot
            var entry: JSONObject = [
                "name": .string(snapshot.name), "state": .string(snapshot.state.listed),
                "pid": snapshot.pid.map { .int(Int64($0)) } ?? .null,
                "tools": .array(snapshot.tools.map(JSONValue.string)), "restarts": .int(Int64(snapshot.restarts)),
            ]
            if case .failed(let reason) = snapshot.state { entry["reason"] = .string(reason) }
            entries.append(.object(entry))
        }
        return entries
    }

    /// Stops every server and waits until each process is reaped (shutdown).
    public func stopAll() async {
        let processes =
            servers.withLock { all in
                defer { all = [:] }
                return Array(all.values)
            } + retiring.withLock { Array($0.values) }
        await withTaskGroup(of: Void.self) { group in
            for process in processes { group.addTask { await process.stop() } }
        }
    }
}
