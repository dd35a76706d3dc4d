public import Sessions
import Tools
import YAML

/// Log verbosity (CONTRACT §3 `log_level`), in increasing severity.
public enum LogLevel: String, Sendable, CaseIterable, Comparable {
    case debug, info, notice, warning, error

    public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// The daemon's own settings (`agentd.yaml`, CONTRACT §3); every key is optional.
public struct DaemonConfig: Sendable, Equatable {
    /// Where the daemon looks when no `--config` is given; its absence is not an error.
    public static let defaultPath = "/etc/agentd/agentd.yaml"

    public var agentsDir = "/etc/agentd/agents.d"
    public var socketDir = "/run/agentd"
    /// Group of the agent sockets; nil: the daemon's own group.
    public var socketGroup: String?
    /// Mode and group of `<socket_dir>/control.sock`; `path` is not configurable and stays nil.
    public var controlSocket = SocketSettings(mode: 0o600)
    public var mistralBaseURL = "https://api.mistral.ai"
    public var apiKeyFile: String?
    public var maxConnections = 1024
    public var shutdownGrace: Duration = .seconds(30)
    public var logLevel: LogLevel = .info
    /// Prompts and replies are logged only when true.
    public var logContent = false
    /// Where the sessions database lives; `memory` keeps sessions in memory only.
    public var stateDir = "/var/lib/agentd"
    /// The session limits of every agent, unless its file overrides them (`sessions:`).
    public var sessions = SessionLimits.defaults
    /// The MCP servers agents may name, by name (§3 `mcp_servers`).
    public var mcpServers: [String: MCPServerConfig] = [:]
    /// Where `GET /metrics` is served; nil: no listener (the control `metrics` command still answers).
    public var metricsListen: MetricsListen?

    public init() {}

    /// Loads `path`, or `defaultPath` when nil. A missing file is an error only when
    /// `explicit` (named with `--config`); otherwise it means the defaults. An empty file is
    /// valid and means the defaults.
    public static func load(path: String?, explicit: Bool) -> Result<DaemonConfig, DiagnosticList> {
        let file = path ?? defaultPath
        let bytes: [UInt8]
        do {
            bytes = try ConfigFile.contents(of: file)
        } catch {
            switch error {
            case .missing where !explicit: return .success(DaemonConfig())
            case .missing: return fileError(file, "cannot open file: No such file or directory")
            case .failed(let message): return fileError(file, message)
            }
        }
        switch ConfigFile.parse(bytes, file: file) {
        case .failure(let diagnostics): return .failure(diagnostics)
        case .success(nil): return .success(DaemonConfig())
        case .success(let root?):
            var reader = DaemonConfigReader(checker: NodeChecker(file: file))
            let config = reader.read(root)
            let diagnostics = reader.checker.diagnostics
            return diagnostics.isEmpty ? .success(config) : .failure(DiagnosticList(diagnostics))
        }
    }

    private static func fileError(_ file: String, _ message: String) -> Result<DaemonConfig, DiagnosticList> {
        .failure(DiagnosticList([Diagnostic(file: file, line: 1, column: 1, message: message)]))
    }
}

private struct DaemonConfigReader {
    var checker: NodeChecker

    private static let keys = [
        "agents_dir", "socket_dir", "socket_group", "control_socket", "mistral", "max_connections",
        "shutdown_grace", "log_level", "log_content", "state_dir", "sessions", "mcp_servers", "metrics",
    ]

    mutating func read(_ root: YAMLNode) -> DaemonConfig {
        var config = DaemonConfig()
        guard let fields = checker.fields(of: root, path: "", known: Self.keys) else { return config }
        if let node = fields["agents_dir"] { config.agentsDir = path(node, "agents_dir") ?? config.agentsDir }
        if let node = fields["socket_dir"] { config.socketDir = path(node, "socket_dir") ?? config.socketDir }
        if let node = fields["socket_group"] { config.socketGroup = checker.group(node, path: "socket_group") }
        if let node = fields["control_socket"],
            let socket = checker.fields(of: node, path: "control_socket", known: ["mode", "group"])
        {
            if let mode = socket["mode"] {
                config.controlSocket.mode =
                    checker.octalMode(mode, path: "control_socket.mode") ?? config.controlSocket.mode
            }
            if let group = socket["group"] {
                config.controlSocket.group = checker.group(group, path: "control_socket.group")
            }
        }
        if let node = fields["mistral"],
            let mistral = checker.fields(of: node, path: "mistral", known: ["base_url", "api_key_file"])
        {
            if let url = mistral["base_url"], let text = checker.nonEmptyString(url, path: "mistral.base_url") {
                if text.hasPrefix("https://") || text.hasPrefix("http://") {
                    config.mistralBaseURL = text.hasSuffix("/") ? String(text.dropLast()) : text
                } else {
                    checker.error(url, "mistral.base_url: expected an http:// or https:// URL, got '\(text)'")
                }
            }
            if let file = mistral["api_key_file"] { config.apiKeyFile = path(file, "mistral.api_key_file") }
        }
        if let node = fields["max_connections"] {
            config.maxConnections =
                checker.integer(node, path: "max_connections", in: 1...1_000_000) ?? config.maxConnections
        }
        if let node = fields["shutdown_grace"] {
            config.shutdownGrace = checker.duration(node, path: "shutdown_grace") ?? config.shutdownGrace
        }
        if let node = fields["log_level"],
            let level = checker.choice(node, path: "log_level", from: LogLevel.allCases.map(\.rawValue))
        {
            config.logLevel = LogLevel(rawValue: level) ?? config.logLevel
        }
        if let node = fields["log_content"] { config.logContent = checker.bool(node, path: "log_content") ?? false }
        if let node = fields["state_dir"] { config.stateDir = path(node, "state_dir") ?? config.stateDir }
        if let node = fields["sessions"] {
            let known = SessionOverrides.keys + ["max_sessions"]
            if let sessions = checker.fields(of: node, path: "sessions", known: known) {
                config.sessions = checker.sessionOverrides(sessions).applied(to: config.sessions)
                if let count = sessions["max_sessions"] {
                    config.sessions.maxSessions =
                        checker.integer(count, path: "sessions.max_sessions", in: 1...10_000_000)
                        ?? config.sessions.maxSessions
                }
            }
        }
        if let node = fields["mcp_servers"] { config.mcpServers = checker.mcpServers(node) }
        if let node = fields["metrics"], let metrics = checker.fields(of: node, path: "metrics", known: ["listen"]),
            let listen = metrics["listen"], let text = checker.nonEmptyString(listen, path: "metrics.listen")
        {
            switch MetricsListen.parse(text) {
            case .success(let address): config.metricsListen = address
            case .failure(let error): checker.error(listen, "metrics.listen: \(error)")
            }
        }
        return config
    }

    /// A non-empty path; relative paths are kept as written (relative to the working directory).
    private mutating func path(_ node: YAMLNode, _ key: String) -> String? {
        checker.nonEmptyString(node, path: key)
    }
}
