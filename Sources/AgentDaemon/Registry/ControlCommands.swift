import AgentCore
import AgentProtocol
import Basics
import Glibc
import JSON
import MCPServers
import Sessions
import Synchronization

/// The report of the latest reload, for `status`.
final class LastReload: Sendable {
    private let value = Mutex<ReloadReport?>(nil)

    var report: ReloadReport? {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}

/// The control socket's commands (CONTRACT §4): `list`, `status`, `reload`, `metrics`, `chat`,
/// and the sessions' `sessions`, `session` and `forget`.
struct ControlCommands: Sendable {
    let registry: AgentRegistry
    let tracker: ConnectionTracker
    let reloads: ReloadCoordinator
    let sessions: SessionStore
    let startedAt: ContinuousClock.Instant
    let lastReload: LastReload
    /// The MCP servers for `status`; nil where none can run (tests).
    var mcp: MCPSupervisor? = nil
    let metrics: DaemonMetrics
    let audit: AuditLog

    static let names = "list, status, reload, metrics, chat, sessions, session, forget"

    /// `peer` is who sent the command: for the audit trail, and whose sessions `session` and
    /// `forget` mean when the line names no `uid` (the daemon's own uid when it cannot be read),
    /// as `chat` without one uses them.
    func run(id: RequestID, command: String, body: JSONObject, peer: PeerIdentity?) async -> JSONValue {
        let peerUID = peer?.uid ?? SessionStorage.daemonUID
        switch command {
        case "list":
            if let extra = body.keys.first(where: { $0 != "id" && $0 != "command" }) {
                return Event.error(id: id, ErrorInfo(code: .badRequest, message: "\(extra): unknown field for list"))
            }
            return Event.result(id: id, key: "agents", value: .array(registry.all.map(listing)))
        case "status":
            return Event.result(id: id, key: "status", value: await status())
        case "sessions", "session", "forget":
            do {
                return try await sessionCommand(id: id, command: command, body: body, peerUID: peerUID)
            } catch {
                return Event.error(id: id, error)
            }
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
                    code: .badRequest, message: "command: unknown command \"\(command)\" (\(Self.names))"))
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

    private func status() async -> JSONValue {
        let sessionCounts = Dictionary(grouping: (try? await sessions.list()) ?? [], by: \.key.agent).mapValues(\.count)
        var agents = JSONObject()
        for entry in registry.all {
            var counters = entry.runtime.counters.json.objectValue ?? [:]
            counters["state"] = .string(entry.runtime.state.listed)
            counters["sessions"] = .int(Int64(sessionCounts[entry.runtime.name] ?? 0))
            agents[entry.runtime.name] = .object(counters)
        }
        let uptime = ContinuousClock.now - startedAt
        var status: JSONObject = [
            "version": .string(BuildInfo.version), "pid": .int(Int64(getpid())),
            "uptime_s": .double((Double(uptime.milliseconds) / 1000).rounded()),
            "agents": .object(agents), "in_flight": .int(Int64(tracker.inFlight)),
            "connections": .int(Int64(tracker.connectionCount)),
        ]
        status["mcp_servers"] = .array(await mcp?.status() ?? [])
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

extension ControlCommands {
    /// `sessions` (optionally of one `agent`), `session` and `forget` (one session: `agent`,
    /// `session`, and `uid`, by default the control client's). Times are Unix epoch seconds.
    fileprivate func sessionCommand(id: RequestID, command: String, body: JSONObject, peerUID: UInt32)
        async throws(ErrorInfo) -> JSONValue
    {
        let allowed: Set<String> =
            command == "sessions" ? ["id", "command", "agent"] : ["id", "command", "agent", "session", "uid"]
        if let extra = body.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw ErrorInfo(code: .badRequest, message: "\(extra): unknown field for \(command)")
        }
        let agent = try body["agent"].map { value throws(ErrorInfo) in
            guard let name = value.stringValue, !name.isEmpty else {
                throw ErrorInfo(code: .badRequest, message: "agent: must be the name of an agent")
            }
            return name
        }
        do {
            if command == "sessions" {
                return Event.result(
                    id: id, key: "sessions", value: .array(try await sessions.list(agent: agent).map(\.json)))
            }
            guard let agent else {
                throw ErrorInfo(code: .badRequest, message: "agent: required for \(command), the name of an agent")
            }
            guard let name = body["session"] else {
                throw ErrorInfo(code: .badRequest, message: "session: required for \(command), the session's name")
            }
            let key = SessionKey(
                agent: agent, uid: try uid(body["uid"]) ?? peerUID, name: try sessionName(name, id: id))
            if command == "forget" {
                return Event.result(id: id, key: "forgotten", value: .bool(try await sessions.forget(key)))
            }
            // Reading counts as use: showing a session keeps it from expiring for another ttl.
            let messages = try await sessions.read(key).map { try JSONParser.parse(bytes: $0.content) }
            return Event.result(id: id, key: "messages", value: .array(messages))
        } catch let error as ErrorInfo {
            throw error
        } catch {
            throw ErrorInfo(code: .internal, message: "session store: \(error)")
        }
    }

    private func sessionName(_ value: JSONValue, id: RequestID) throws(ErrorInfo) -> String {
        do {
            return try RequestDecoder.sessionName(value, id: id)
        } catch {
            throw error.info
        }
    }

    private func uid(_ value: JSONValue?) throws(ErrorInfo) -> UInt32? {
        guard let value else { return nil }
        guard let number = value.intValue, let uid = UInt32(exactly: number) else {
            throw ErrorInfo(code: .badRequest, message: "uid: must be a user id, an integer from 0 to 4294967295")
        }
        return uid
    }
}

extension SessionSummary {
    /// An entry of the `sessions` result.
    fileprivate var json: JSONValue {
        [
            "agent": .string(key.agent), "session": .string(key.name), "uid": .int(Int64(key.uid)),
            "messages": .int(Int64(messages)), "bytes": .int(Int64(bytes)), "updated": updated.epochSeconds,
            "expires": expires.epochSeconds,
        ]
    }
}

extension Timestamp {
    /// Seconds since the Unix epoch, to the millisecond.
    fileprivate var epochSeconds: JSONValue { .double(Double(millisecondsSinceEpoch) / 1000) }
}
