import Foundation
import Glibc
import JSON
import Logging
import MCP
import Subprocess
import Synchronization
import SystemPackage
import Tools

/// One MCP server process and its restarts (contract §9): spawned with swift-subprocess, its
/// stdin and stdout handed to the SDK's `StdioTransport`, initialised and its tools listed,
/// its stderr lines sent to the journal, started again with backoff after it exits.
///
/// Its life: ``start()`` returns once the first handshake succeeded or failed; ``run()``
/// keeps it going; ``stop()`` ends it (stdin closed, then SIGTERM, then SIGKILL) and waits.
actor MCPServerProcess {
    nonisolated let config: MCPServerConfig
    private let logger: Logger
    private let clientVersion: String
    private var lifecycle = MCPServerLifecycle()
    private var client: Client?
    private(set) var tools: [MCPTool] = []
    private var callsInFlight = 0
    private var idleWaiters: [CheckedContinuation<Void, Never>] = []
    private var firstHandshake: [CheckedContinuation<Void, Never>] = []
    private var firstHandshakeDone = false
    private var supervision: Task<Void, Never>?
    /// Closes the running server's stdin: the first step of stopping it.
    private var closeStdin: (@Sendable () -> Void)?

    /// How long a server has to exit once its stdin is closed, and again after SIGTERM.
    static let stopGrace: Duration = .seconds(2)
    /// `tools/list` pages read at most: a server that keeps handing out cursors is cut off.
    static let maxPages = 100

    init(config: MCPServerConfig, clientVersion: String, logger: Logger) {
        self.config = config
        self.clientVersion = clientVersion
        var logger = logger
        logger[metadataKey: "mcp_server"] = "\(config.name)"
        self.logger = logger
    }

    /// What `status` shows of it.
    struct Snapshot: Sendable {
        var name: String
        var state: MCPServerLifecycle.State
        var pid: Int32?
        var tools: [String]
        var restarts: Int
    }

    var snapshot: Snapshot {
        Snapshot(
            name: config.name, state: lifecycle.state, pid: lifecycle.pid, tools: tools.map(\.name),
            restarts: lifecycle.restarts)
    }

    var state: MCPServerLifecycle.State { lifecycle.state }

    /// Starts supervising; returns once the first handshake has succeeded or failed, so that
    /// the load that named the server can report it.
    func start() async {
        guard supervision == nil else { return }
        supervision = Task { await self.supervise() }
        guard !firstHandshakeDone else { return }
        await withCheckedContinuation { firstHandshake.append($0) }
    }

    /// Stops the server for good and returns once its process is reaped.
    func stop() async {
        _ = lifecycle.handle(.stopRequested)
        markFirstHandshakeDone()
        await endClient()
        closeStdin?()
        guard let supervision else { return }
        // The server had its chance to exit on end of input; cancelling the run makes
        // swift-subprocess send SIGTERM to its group, then SIGKILL after the grace.
        let task = supervision
        // Between two lives (a backoff) there is no process to wait for.
        let grace = Task { [pid = lifecycle.pid] in
            if pid != nil { try? await Task.sleep(for: Self.stopGrace) }
            task.cancel()
        }
        await supervision.value
        grace.cancel()
        self.supervision = nil
    }

    /// Returns once no call is running: a changed server is replaced only then.
    func waitUntilIdle() async {
        guard callsInFlight > 0 else { return }
        await withCheckedContinuation { idleWaiters.append($0) }
    }

    private func markFirstHandshakeDone() {
        firstHandshakeDone = true
        for waiter in firstHandshake { waiter.resume() }
        firstHandshake = []
    }

    // MARK: - Supervision

    private func supervise() async {
        while lifecycle.state != .stopped {
            let started = ContinuousClock.now
            let ending = await runOnce()
            markFirstHandshakeDone()
            let delay: Duration?
            switch ending {
            case .spawnFailed(let reason):
                delay = lifecycle.handle(.spawnFailed(reason: reason))
                logger.error("MCP server could not be started", metadata: ["reason": "\(reason)"])
            case .exited(let reason):
                delay = lifecycle.handle(.exited(reason: reason, uptime: .now - started))
                if lifecycle.state != .stopped {
                    logger.warning("MCP server exited", metadata: ["reason": "\(reason)"])
                }
            }
            guard let delay else { return }
            logger.notice("MCP server restarts after a backoff", metadata: ["delay": "\(delay)"])
            do {
                try await Task.sleep(for: delay)
            } catch {
                return
            }
            _ = lifecycle.handle(.restarting)
        }
    }

    private enum Ending {
        case spawnFailed(String)
        case exited(String)
    }

    /// One life of the process, from spawn to reap.
    private func runOnce() async -> Ending {
        let toChild: (readEnd: FileDescriptor, writeEnd: FileDescriptor)
        let fromChild: (readEnd: FileDescriptor, writeEnd: FileDescriptor)
        do {
            toChild = try FileDescriptor.pipe()
            fromChild = try FileDescriptor.pipe()
        } catch {
            return .spawnFailed("cannot create pipes: \(error)")
        }
        // Our ends must not leak into this or any other child.
        _ = fcntl(toChild.writeEnd.rawValue, F_SETFD, FD_CLOEXEC)
        _ = fcntl(fromChild.readEnd.rawValue, F_SETFD, FD_CLOEXEC)
        let stdinOpen = Mutex(true)
        let writeEnd = toChild.writeEnd
        closeStdin = {
            let wasOpen = stdinOpen.withLock { open in
                defer { open = false }
                return open
            }
            if wasOpen { try? writeEnd.close() }
        }
        defer {
            closeStdin?()
            closeStdin = nil
        }

        var environment = config.env
        if environment["PATH"] == nil { environment["PATH"] = "/usr/bin:/bin" }
        var platformOptions = PlatformOptions()
        platformOptions.processGroupID = 0
        platformOptions.teardownSequence = [
            .gracefulShutDown(toProcessGroup: true, allowedDurationToNextStep: Self.stopGrace)
        ]
        let configuration = Configuration(
            executable: .path(.init(config.command[0])),
            arguments: Arguments(Array(config.command.dropFirst())),
            environment: .custom(
                Dictionary(uniqueKeysWithValues: environment.map { (Environment.Key(stringLiteral: $0.key), $0.value) })
            ),
            workingDirectory: "/",
            platformOptions: platformOptions
        )
        let logger = logger
        do {
            let result = try await Subprocess.run(
                configuration,
                input: .fileDescriptor(toChild.readEnd, closeAfterSpawningProcess: true),
                output: .fileDescriptor(fromChild.writeEnd, closeAfterSpawningProcess: true),
                error: .sequence
            ) { execution in
                // The handshake goes on while stderr is read: a server that writes much to
                // stderr while it starts must never block on a full pipe.
                async let handshake: Void = self.spawned(
                    pid: execution.processIdentifier.value, stdout: fromChild.readEnd, stdin: toChild.writeEnd)
                var splitter = StderrLineSplitter()
                let emit: (String) -> Void = { line in
                    logger.info("MCP server stderr", metadata: ["mcp_server.stderr": "\(line)"])
                }
                for try await buffer in execution.standardError {
                    buffer.withUnsafeBytes { splitter.feed($0, emit: emit) }
                }
                splitter.finish(emit: emit)
                await handshake
            }
            await endClient()
            // The transport's read loop sees the client gone within its 10 ms poll; only
            // then may the descriptor number be given back to the system.
            try? await Task.sleep(for: .milliseconds(50))
            try? fromChild.readEnd.close()
            return .exited(Self.describe(result.terminationStatus))
        } catch {
            await endClient()
            try? fromChild.readEnd.close()
            return .spawnFailed("cannot run \(config.command[0]): \(error)")
        }
    }

    private static func describe(_ status: TerminationStatus) -> String {
        switch status {
        case .exited(let code): "exit status \(code)"
        case .signaled(let signal): "killed by signal \(signal)"
        }
    }

    /// The process runs: connect the SDK's client over its pipes and shake hands, bounded by
    /// the server's timeout. A failed handshake ends the process.
    private func spawned(pid: Int32, stdout: FileDescriptor, stdin: FileDescriptor) async {
        _ = lifecycle.handle(.spawned(pid: pid))
        guard lifecycle.state != .stopped else { return }
        logger.info("MCP server started", metadata: ["pid": "\(pid)"])
        let transport = StdioTransport(input: stdout, output: stdin, logger: nil)
        let client = Client(name: "agentd", version: clientVersion)
        // A server may ping; the SDK answers only requests it has a handler for.
        await client.withMethodHandler(Ping.self) { _ in Empty() }
        // The handler runs inside the client's receive loop, which must go on to read the
        // new list's reply: so the listing happens in a task of its own.
        await client.onNotification(ToolListChangedNotification.self) { [weak self] _ in
            guard let self else { return }
            Task { await self.toolListChanged() }
        }
        do {
            let initialized = try await withTimeout(config.timeout, "initialize", ending: client) {
                try await client.connect(transport: transport)
            }
            self.client = client
            let listed = try await listTools(client)
            guard lifecycle.state != .stopped else { return }
            setTools(listed)
            _ = lifecycle.handle(.handshakeSucceeded)
            logger.notice(
                "MCP server ready",
                metadata: [
                    "pid": "\(pid)", "mcp.protocol_version": "\(initialized.protocolVersion)",
                    "mcp.server_name": "\(initialized.serverInfo.name)", "tools": "\(tools.count)",
                ])
        } catch {
            let reason = "handshake failed: \(error)"
            _ = lifecycle.handle(.handshakeFailed(reason: reason))
            logger.error("MCP server failed its handshake", metadata: ["reason": "\(reason)"])
            await endClient()
            closeStdin?()
            Self.terminate(group: pid)
        }
        markFirstHandshakeDone()
    }

    /// Ends a server that failed its handshake: SIGTERM to its group, SIGKILL after the grace
    /// if any of it still lives. The group id cannot be a stranger's: Linux keeps it allocated
    /// while a member lives (see ExecToolRunner's leftovers).
    private static func terminate(group pid: Int32) {
        _ = kill(-pid, SIGTERM)
        Task {
            try? await Task.sleep(for: stopGrace)
            if kill(-pid, 0) == 0 { _ = kill(-pid, SIGKILL) }
        }
    }

    /// Every page of `tools/list`.
    private func listTools(_ client: Client) async throws -> [Tool] {
        var tools: [Tool] = []
        var cursor: String?
        for _ in 0..<Self.maxPages {
            let page = try await withTimeout(config.timeout, "tools/list", ending: client) { [cursor] in
                try await client.listTools(cursor: cursor)
            }
            tools += page.tools
            cursor = page.nextCursor
            if cursor == nil { return tools }
        }
        logger.warning("MCP server's tool list cut off", metadata: ["pages": "\(Self.maxPages)"])
        return tools
    }

    private func setTools(_ listed: [Tool]) {
        let (offered, problems) = MCPToolCatalog.offered(listed, by: config)
        for problem in problems { logger.warning("MCP tool left out", metadata: ["problem": "\(problem)"]) }
        tools = offered
    }

    private func toolListChanged() async {
        guard let client, lifecycle.state == .ready else { return }
        do {
            setTools(try await listTools(client))
            logger.notice("MCP server's tools changed", metadata: ["tools": "\(tools.count)"])
        } catch {
            logger.warning("MCP server's new tool list unreadable", metadata: ["error": "\(error)"])
        }
    }

    /// Disconnecting fails every call still waiting for its reply (`ok:false`).
    private func endClient() async {
        guard let client else { return }
        self.client = nil
        tools = []
        await client.disconnect()
    }

    // MARK: - Calls

    /// Runs `tools/call`; every failure is an outcome with `ok == false`. Cancelling the
    /// calling task sends `notifications/cancelled` and returns at once.
    func call(_ tool: String, arguments: JSONObject) async -> ToolOutcome {
        let clock = ContinuousClock()
        let start = clock.now
        func failed(_ reason: String) -> ToolOutcome {
            ToolOutcome(
                ok: false, output: reason, failureReason: reason, exitStatus: nil, duration: clock.now - start,
                outputCut: false)
        }
        guard lifecycle.state == .ready, let client else {
            return failed("MCP server \(config.name) is not ready (\(lifecycle.state.listed))")
        }
        guard tools.contains(where: { $0.name == tool }) else {
            return failed("MCP server \(config.name) offers no tool \(tool)")
        }
        callsInFlight += 1
        defer {
            callsInFlight -= 1
            if callsInFlight == 0 {
                for waiter in idleWaiters { waiter.resume() }
                idleWaiters = []
            }
        }
        let context: RequestContext<CallTool.Result>
        do {
            context = try await client.callTool(
                name: tool,
                arguments: Dictionary(arguments.map { ($0.key, MCPToolCatalog.value($0.value)) }) { a, _ in a })
        } catch {
            return failed("MCP call could not be sent: \(error)")
        }
        let timeout = config.timeout
        let outcome: Result<CallTool.Result, CallFailure> = await withTaskCancellationHandler {
            await withTaskGroup(of: Result<CallTool.Result, CallFailure>?.self) { group in
                group.addTask {
                    do {
                        return .success(try await context.value)
                    } catch is CancellationError {
                        return .failure(.cancelled)
                    } catch {
                        return .failure(.error("\(error)"))
                    }
                }
                group.addTask {
                    do {
                        try await Task.sleep(for: timeout)
                        return .failure(.timedOut)
                    } catch {
                        return nil
                    }
                }
                var first: Result<CallTool.Result, CallFailure>?
                while first == nil, let next = await group.next() {
                    first = next
                    if next == nil, Task.isCancelled { first = .failure(.cancelled) }
                }
                if case .failure(.timedOut) = first {
                    try? await client.cancelRequest(context.requestID, reason: "timed out")
                }
                group.cancelAll()
                return first ?? .failure(.cancelled)
            }
        } onCancel: {
            Task { try? await client.cancelRequest(context.requestID, reason: "cancelled") }
        }
        switch outcome {
        case .success(let result):
            let text = MCPToolCatalog.text(of: result.content)
            let isError = result.isError == true
            return ToolOutcome(
                ok: !isError, output: text, failureReason: isError ? "the tool reported an error" : nil,
                exitStatus: nil,
                duration: clock.now - start, outputCut: false)
        case .failure(.cancelled): return failed("cancelled")
        case .failure(.timedOut): return failed("timed out after \(timeout)")
        case .failure(.error(let message)): return failed("MCP call failed: \(message)")
        }
    }

    private enum CallFailure: Error, Equatable {
        case cancelled
        case timedOut
        case error(String)
    }

    // MARK: -

    /// `body`, or a timeout error after `limit`. The SDK's requests wait on continuations that
    /// cancellation does not reach, so at the timeout `client` is disconnected, which ends them.
    private func withTimeout<T: Sendable>(
        _ limit: Duration, _ what: String, ending client: Client, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: limit)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else {
                await client.disconnect()
                throw MCPTimeout(what: what, limit: limit)
            }
            return value
        }
    }
}

struct MCPTimeout: Error, CustomStringConvertible {
    var what: String
    var limit: Duration
    var description: String { "no reply to \(what) within \(limit)" }
}
