import Prometheus
import Synchronization

/// Every series of CONTRACT §6, in one Prometheus registry, rendered by the control `metrics`
/// command and by `GET /metrics`.
///
/// Counters and histograms are recorded as things happen, on handles resolved once per agent
/// (`agent(named:)`), so a request never looks a series up by its name. Gauges that mirror
/// state agentd keeps anyway (requests in flight, queue depth, open connections) are read from
/// that state when the metrics are rendered: they cost the request path nothing.
///
/// Labels are bounded: agent and tool names come from definitions, outcomes from the closed
/// list of error codes, statuses from HTTP, servers from agentd.yaml. Never a request id, a
/// uid or a session.
final class DaemonMetrics: Sendable {
    /// From a cached first token (10 ms) to a long reasoning reply (120 s).
    static let latencyBuckets: [Duration] = [
        .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(20),
        .seconds(30), .seconds(60), .seconds(120),
    ]

    let registry = PrometheusCollectorRegistry()
    private let agents = Mutex<[String: AgentMetrics]>([:])
    private let mcpServers = Mutex<[String: Gauge]>([:])
    private let connections: Gauge
    private let sessions: Gauge
    private let reloadsOK: Counter
    private let reloadsFailed: Counter

    init() {
        connections = registry.makeGauge(
            descriptor: Self.name("connections", help: "Open client connections, all sockets"))
        sessions = registry.makeGauge(descriptor: Self.name("sessions", help: "Sessions stored"))
        let reloads = Self.name("reloads", unit: "total", help: "Reloads (SIGHUP or the control reload), by result")
        reloadsOK = registry.makeCounter(descriptor: reloads, labels: [("result", "ok")])
        reloadsFailed = registry.makeCounter(descriptor: reloads, labels: [("result", "failed")])
    }

    /// The series of agent `name`, made on first use; an agent that a reload removes and a later
    /// one adds again keeps counting where it left off.
    func agent(named name: String) -> AgentMetrics {
        agents.withLock { agents in
            if let existing = agents[name] { return existing }
            let made = AgentMetrics(agent: name)
            agents[name] = made
            return made
        }
    }

    /// A reload ended; `ok` false when any file or the directory failed to load.
    func reloaded(ok: Bool) {
        (ok ? reloadsOK : reloadsFailed).increment()
    }

    /// `agentd_sessions`, sampled from the session store (`sample(every:sessions:mcp:)`).
    func setSessions(_ count: Int) {
        sessions.set(Int64(count))
    }

    /// `agentd_mcp_server_up{server}`, sampled from the MCP supervisor: 1 ready, 0 starting or
    /// failed.
    func setMCPServer(_ server: String, up: Bool) {
        let gauge = mcpServers.withLock { gauges in
            if let existing = gauges[server] { return existing }
            let made = registry.makeGauge(
                descriptor: Self.name(
                    "mcp_server_up", help: "1 while the MCP server is initialised and listed its tools"),
                labels: [("server", server)])
            gauges[server] = made
            return made
        }
        gauge.set(to: up ? 1 : 0)
    }

    /// The Prometheus text exposition, after setting the sampled gauges from `live`: the
    /// daemon's registry and each agent's (agents by name), merged into one block per family.
    func exposition(_ live: LiveState) -> [UInt8] {
        connections.set(Int64(live.connections))
        let agents = agents.withLock { $0 }.sorted { $0.key < $1.key }
        var families = ExpositionFamilies()
        families.add(registry.emitToBuffer())
        for (name, metrics) in agents {
            let sample = live.agents[name]
            metrics.inFlight.set(Int64(sample?.inFlight ?? 0))
            metrics.queueDepth.set(Int64(sample?.queued ?? 0))
            families.add(metrics.registry.emitToBuffer())
        }
        return families.text
    }

    /// What the gauges sample when metrics are rendered.
    struct LiveState {
        var connections: Int
        var agents: [String: (inFlight: Int, queued: Int)]
    }

    static func name(_ name: String, unit: String? = nil, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "agentd", metricName: name, unitName: unit ?? "", helpText: help)
    }
}

/// Expositions of several registries as one: a family's `# HELP` and `# TYPE` once, then its
/// series from every registry. The text format allows a family's lines only in one block.
struct ExpositionFamilies {
    private var order: [String] = []
    private var families: [String: (header: [UInt8], series: [UInt8])] = [:]

    mutating func add(_ exposition: [UInt8]) {
        var family = ""
        var headerOfNewFamily = false
        for line in exposition.split(separator: UInt8(ascii: "\n")) {
            if line.starts(with: Self.help) || line.starts(with: Self.type) {
                let name = String(
                    decoding: line.dropFirst(Self.help.count).prefix { $0 != UInt8(ascii: " ") }, as: UTF8.self)
                if name != family {
                    family = name
                    headerOfNewFamily = families[name] == nil
                    if headerOfNewFamily { order.append(name) }
                }
                if headerOfNewFamily { families[name, default: ([], [])].header += line + [UInt8(ascii: "\n")] }
            } else if !family.isEmpty {
                families[family, default: ([], [])].series += line + [UInt8(ascii: "\n")]
            }
        }
    }

    var text: [UInt8] {
        order.flatMap { name in families[name].map { $0.header + $0.series } ?? [] }
    }

    // Both seven bytes long, so the family name starts at the same offset.
    private static let help = Array("# HELP ".utf8)
    private static let type = Array("# TYPE ".utf8)
}
