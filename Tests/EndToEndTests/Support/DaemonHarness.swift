import Foundation
import Glibc
import JSON

/// One agentd under test: its own agents directory, socket directory, `NOTIFY_SOCKET` and
/// emulator, all in a short temporary directory.
final class DaemonHarness: @unchecked Sendable {
    let directory = TemporaryDirectory()
    let emulator: Emulator
    let notify: NotifySocket
    private(set) var daemon: ChildProcess?

    var agentsDir: String { "\(directory.path)/agents.d" }
    var socketDir: String { "\(directory.path)/run" }
    var controlPath: String { "\(socketDir)/control.sock" }
    /// Every test daemon keeps its sessions here, never in /var/lib/agentd.
    var stateDir: String { "\(directory.path)/state" }
    func socketPath(_ agent: String) -> String { "\(socketDir)/agents/\(agent).sock" }

    /// `agents` maps file names to YAML; `config` is the daemon config's YAML.
    init(agents: [String: String], config: String = "", emulator sharedEmulator: Emulator? = nil) throws {
        try FileManager.default.createDirectory(atPath: "\(directory.path)/agents.d", withIntermediateDirectories: true)
        for (name, yaml) in agents { directory.write("agents.d/\(name)", yaml) }
        directory.write("agentd.yaml", config)
        emulator = try sharedEmulator ?? Emulator(directory: directory)
        notify = NotifySocket(path: "\(directory.path)/notify")
    }

    /// Starts agentd and waits for READY=1.
    @discardableResult
    func start(extraArguments: [String] = [], environment: [String: String] = [:], waitForReady: Bool = true) throws
        -> ChildProcess
    {
        let child = try ChildProcess(
            "\(productsDirectory)/agentd",
            [
                "--config", "\(directory.path)/agentd.yaml", "--agents-dir", agentsDir, "--socket-dir", socketDir,
                "--state-dir", stateDir,
            ] + extraArguments,
            environment: [
                "NOTIFY_SOCKET": notify.path, "MISTRAL_API_KEY": Emulator.apiKey, "MISTRAL_BASE_URL": emulator.baseURL,
            ].merging(environment) { $1 },
            logDirectory: directory.path)
        daemon = child
        if waitForReady, notify.wait(for: "READY=1") == nil {
            throw TestFailure("agentd did not become ready; stderr:\n\(child.stderr)")
        }
        return child
    }

    func connect(_ agent: String) throws -> LineClient { try LineClient(path: socketPath(agent)) }

    func control(_ command: JSONValue) throws -> JSONValue {
        let client = try LineClient(path: controlPath)
        guard let reply = client.request(command).last else { throw TestFailure("no reply to \(command.jsonText)") }
        return reply
    }

    /// Sends SIGHUP and waits for the READY=1 that ends the reload.
    func reload() throws -> String {
        daemon?.signal(SIGHUP)
        guard notify.wait(for: "RELOADING=1") != nil, let ready = notify.wait(for: "READY=1") else {
            throw TestFailure("no RELOADING/READY pair after SIGHUP")
        }
        return ready
    }

    func stop() -> Int32? {
        daemon?.signal(SIGTERM)
        return daemon?.waitForExit(within: 40)
    }
}

/// Agent definitions the tests share.
enum Agents {
    static let chat = """
        description: Test chat agent
        model: mistral-small-latest
        temperature: 0.2
        system: You are a test agent.
        limits:
          timeout: 10s
          first_byte_timeout: 5s
          idle_timeout: 2s
        retry: {attempts: 2, base_delay: 10ms, max_delay: 100ms}
        socket: {mode: "0666"}
        """

    static let tools = """
        model: mistral-small-latest
        tools:
          - name: get_order_status
            description: Look up an order
            parameters:
              type: object
              properties: {order_id: {type: string}}
              required: [order_id]
        socket: {mode: "0666"}
        """

    static let agentMode = """
        mode: agent
        agent_id: ag_0684fe0e0b98773e8000323fc71a3986
        socket: {mode: "0666"}
        """

    static func limited(maxConcurrent: Int, queue: Int) -> String {
        """
        model: mistral-small-latest
        limits: {max_concurrent: \(maxConcurrent), queue: \(queue)}
        socket: {mode: "0666"}
        """
    }
}
