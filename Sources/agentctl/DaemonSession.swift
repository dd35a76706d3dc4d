import AgentProtocol
import ArgumentParser
import Glibc
import JSON

/// Exit codes of CONTRACT §7 (sysexits.h values).
enum AgentctlExit {
    static let requestFailed = ExitCode(1)
    static let usage = ExitCode(64)  // EX_USAGE
    static let invalidConfig = ExitCode(65)  // EX_DATAERR
    static let unreachable = ExitCode(69)  // EX_UNAVAILABLE
}

/// A failure that ends agentctl: the message for stderr and the exit code it maps to.
struct AgentctlError: Error, CustomStringConvertible {
    var exitCode: ExitCode
    var message: String

    var description: String { message }

    /// The daemon (or agent) socket could not be reached.
    static func unreachable(_ error: LineSocketError) -> AgentctlError {
        let hint =
            switch error.errno {
            case EACCES: "only agentd's user and its client group may connect; run agentctl as one of them, or "
            case ENOENT, ECONNREFUSED: "is agentd running? If it uses another directory, "
            default: ""
            }
        let message =
            "cannot connect to agentd at \(error.path): \(error.detail) "
            + "(\(hint)use --socket-dir DIR or AGENTD_SOCKET_DIR to point at its socket directory)"
        return AgentctlError(exitCode: AgentctlExit.unreachable, message: message)
    }

    /// The daemon answered with an `error` event.
    static func requestFailed(_ info: ErrorInfo) -> AgentctlError {
        AgentctlError(exitCode: AgentctlExit.requestFailed, message: "\(info.code.rawValue): \(info.message)")
    }

    static func requestFailed(_ message: String) -> AgentctlError {
        AgentctlError(exitCode: AgentctlExit.requestFailed, message: message)
    }
}

/// Where agentd's sockets are: `--socket-dir`, else `AGENTD_SOCKET_DIR`, else /run/agentd.
struct ConnectionOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "agentd's socket directory, holding control.sock.",
            discussion: "Default: $AGENTD_SOCKET_DIR, else /run/agentd.", valueName: "dir"),
        completion: .directory)
    var socketDir: String?

    var controlPath: String { Self.controlPath(socketDir: socketDir) }

    static func controlPath(socketDir: String?) -> String {
        let directory = socketDir ?? getenv("AGENTD_SOCKET_DIR").map { String(cString: $0) } ?? "/run/agentd"
        return directory.hasSuffix("/") ? "\(directory)control.sock" : "\(directory)/control.sock"
    }

    /// Shell completion of an agent name: the daemon's `list`, from the socket directory
    /// given on the command line being completed; nothing when the daemon is not reachable.
    @Sendable static func completeAgentName(_ words: [String], _: Int, _ prefix: String) -> [String] {
        var socketDir: String?
        for (index, word) in words.enumerated() {
            if word == "--socket-dir", index + 1 < words.count { socketDir = words[index + 1] }
            if word.hasPrefix("--socket-dir=") { socketDir = String(word.dropFirst("--socket-dir=".count)) }
        }
        guard let session = try? DaemonSession(path: controlPath(socketDir: socketDir)),
            let (result, _) = try? session.command("list")
        else { return [] }
        return (result["agents"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }.filter {
            $0.hasPrefix(prefix)
        }
    }

    /// Connects to the control socket.
    func connect() throws(AgentctlError) -> DaemonSession { try DaemonSession(path: controlPath) }
}

/// One connection to agentd: requests out, events back until each request's terminal event.
struct DaemonSession {
    let client: LineSocketClient

    init(path: String) throws(AgentctlError) {
        do {
            client = try LineSocketClient(path: path)
        } catch {
            throw .unreachable(error)
        }
    }

    /// Sends `request` and hands every event for it to `onEvent` (with the line as received),
    /// returning the terminal event; an `error` event is thrown after `onEvent` has seen it.
    @discardableResult
    func exchange(_ request: JSONValue, onEvent: (ReceivedEvent, [UInt8]) -> Void = { _, _ in }) throws(AgentctlError)
        -> JSONValue
    {
        let id = request["id"] ?? .null
        do {
            try client.send(request)
            while let (value, line) = try client.nextValue() {
                guard let event = ReceivedEvent(value), event.id == nil || event.id?.json == id else { continue }
                onEvent(event, line)
                switch event.kind {
                case .error(let info): throw AgentctlError.requestFailed(info)
                case .done, .result: return value
                default: continue
                }
            }
        } catch let error as AgentctlError {
            throw error
        } catch {
            throw .requestFailed("\(error)")
        }
        throw .requestFailed("agentd closed the connection to \(client.path) before answering")
    }

    /// Runs a control command, with `fields` beside `command`, and returns its `result` event.
    func command(_ name: String, _ fields: JSONObject = [:]) throws(AgentctlError) -> (result: JSONValue, line: [UInt8])
    {
        var raw: [UInt8] = []
        var request = fields
        request["id"] = 1
        request["command"] = .string(name)
        let result = try exchange(.object(request)) { _, line in raw = line }
        return (result, raw)
    }
}
