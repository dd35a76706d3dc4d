import AgentCore
import AgentProtocol
import Basics
import Glibc
import JSON
import Synchronization

/// The report of the latest reload, for `status`.
final class LastReload: Sendable {
    private let value = Mutex<ReloadReport?>(nil)

    var report: ReloadReport? {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}

/// The control socket's commands (CONTRACT §4): `list`, `status`, `reload`, `metrics`, `chat`.
struct ControlCommands: Sendable {
    let registry: AgentRegistry
    let tracker: ConnectionTracker
    let reloads: ReloadCoordinator
    let startedAt: ContinuousClock.Instant
    let lastReload: LastReload
    let metrics: DaemonMetrics
    let audit: AuditLog

    /// `peer`: who sent the command, for the audit trail.
    func run(id: RequestID, command: String, body: JSONObject, peer: PeerIdentity?) async -> JSONValue {
        switch command {
        case "list":
            if let extra = body.keys.first(where: { $0 != "id" && $0 != "command" }) {
                return Event.error(id: id, ErrorInfo(code: .badRequest, message: "\(extra): unknown field for list"))
            }
            return Event.result(id: id, key: "agents", value: .array(registry.all.map(listing)))
        case "status":
            return Event.result(id: id, key: "status", value: status())
        case "reload":
            audit.reloadRequested(byControlPeer: peer)
            guard let report = await reloads.reload() else {
                return Event.error(id: id, .shuttingDown)
            }
            return Event.result(id: id, key: "reload", value: report.json)
        case "metrics":
            let text = String(decoding: metrics.exposition(registry: registry, tracker: tracker), as: UTF8.self)
            return Event.result(id: id, key: "text", value: .string(text))
        default:
            return Event.error(
                id: id,
                ErrorInfo(
                    code: .badRequest,
                    message: "command: unknown command \"\(command)\" (list, status, reload, metrics, chat)"))
        }
    }

    /// Resolves a `chat` command to the request and the agent it is for.
    func chatTarget(id: RequestID, body: JSONObject, decoder: RequestDecoder) -> Result<
        (ChatRequest, AgentRuntime), WireError
    > {
        Result { () throws(WireError) in
            guard let name = body["agent"]?.stringValue else {
                throw WireError(id: id, "agent: required for chat, the name of an agent")
            }
            guard let agent = registry.runtime(named: name) else {
                throw WireError(id: id, "agent: no agent named \"\(name)\"", code: .unknownAgent)
            }
            let request = try decoder.decodeChat(
                body, id: id, allowedKeys: RequestDecoder.chatKeys.union(["command", "agent"]))
            return (request, agent)
        }
    }

    private func listing(_ entry: AgentRegistry.Entry) -> JSONValue {
        entry.runtime.listing(socketPath: entry.listener.binding.path)
    }

    private func status() -> JSONValue {
        var agents = JSONObject()
        for entry in registry.all {
            var counters = entry.runtime.counters.json.objectValue ?? [:]
            counters["state"] = .string(entry.runtime.state.listed)
            agents[entry.runtime.name] = .object(counters)
        }
        let uptime = ContinuousClock.now - startedAt
        var status: JSONObject = [
            "version": .string(BuildInfo.version), "pid": .int(Int64(getpid())),
            "uptime_s": .double((Double(uptime.milliseconds) / 1000).rounded()),
            "agents": .object(agents), "in_flight": .int(Int64(tracker.inFlight)),
            "connections": .int(Int64(tracker.connectionCount)),
        ]
        if let report = lastReload.report {
            status["last_reload"] = [
                "time": .double(report.time), "ok": .bool(report.ok), "errors": .array(report.errors.map(\.json)),
            ]
        } else {
            status["last_reload"] = .null
        }
        return .object(status)
    }
}
