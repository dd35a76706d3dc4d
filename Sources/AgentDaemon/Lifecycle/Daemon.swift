import AgentCore
import AgentProtocol
import AgentRunner
import Glibc
import LLM
import Logging
import MCPServers
import Sessions
import Synchronization
import Systemd

/// The running service (CONTRACT §6): starts (load, bind, READY), serves (signals, reloads)
/// and drains (STOPPING, `shutdown_grace`, exit), one state after the other.
public struct Daemon: Sendable {
    /// sysexits(3) codes the daemon exits with.
    public enum ExitCode {
        public static let ok: Int32 = 0
        public static let failed: Int32 = 1
        /// A socket could not be bound (for instance another agentd serves the same directory).
        public static let unavailable: Int32 = 69
        public static let config: Int32 = 78
    }

    /// Where the daemon is in its life; `run` moves it forward one state at a time.
    private enum State {
        case starting
        case serving(Services)
        case draining(Services)
        case stopped(exitCode: Int32)
    }

    /// What runs while the daemon serves, built by `start`.
    private struct Services {
        let client: MistralClient
        let tracker: ConnectionTracker
        let registry: AgentRegistry
        let reloads: ReloadCoordinator
        let controlListener: Listener
        let sessions: SessionStorage
        let sweeper: Task<Void, Never>
        let mcp: MCPSupervisor
        let metricsSampler: Task<Void, Never>
        let metricsServer: MetricsServer?
        let audit: AuditLog
    }

    /// Why the daemon could not start, and the exit status that says so.
    private struct StartFailure: Error {
        var exitCode: Int32
    }

    let config: DaemonConfig
    /// The `--config` file, nil for the default one; reloads re-read its `sessions` and
    /// `mcp_servers`.
    let configFile: String?
    let logger: Logger
    private let notifier = SystemdNotifier()

    public init(config: DaemonConfig, configFile: String? = nil) {
        self.config = config
        self.configFile = configFile
        var logger = Logger(label: "agentd")
        logger.logLevel = config.logLevel.swiftLogLevel
        self.logger = logger
    }

    /// Serves until SIGTERM or SIGINT; returns the process exit status.
    public func run() async -> Int32 {
        // Signal dispositions first: a SIGHUP from `systemctl reload` right after start must
        // reload, never kill.
        let signals = SignalEvents([SIGHUP, SIGTERM, SIGINT])
        var state = State.starting
        while true {
            switch state {
            case .starting:
                do {
                    state = .serving(try await start())
                } catch {
                    state = .stopped(exitCode: error.exitCode)
                }
            case .serving(let services):
                await serve(services, signals: signals)
                state = .draining(services)
            case .draining(let services):
                await drain(services)
                state = .stopped(exitCode: ExitCode.ok)
            case .stopped(let exitCode):
                return exitCode
            }
        }
    }

    /// Loads the agents, binds every socket, then sends READY.
    private func start() async throws(StartFailure) -> Services {
        let settings = MistralSettings.resolve(baseURL: config.mistralBaseURL, apiKeyFile: config.apiKeyFile)
        for problem in settings.problems {
            logger.warning("Unusable API key source", metadata: ["problem": "\(problem)"])
        }
        if let source = settings.apiKeySource {
            logger.info("Mistral API key loaded", metadata: ["source": "\(source)", "base_url": "\(settings.baseURL)"])
        } else {
            logger.warning(
                "No Mistral API key: requests will fail with upstream_auth until one is configured",
                metadata: ["base_url": "\(settings.baseURL)"])
        }
        let client: MistralClient
        do {
            client = try MistralClient(
                baseURL: settings.baseURL, apiKey: settings.apiKey, userAgent: "agentd/\(BuildInfo.version)",
                logger: logger)
        } catch {
            logger.critical("Cannot start the HTTP client", metadata: ["error": "\(error)"])
            throw StartFailure(exitCode: ExitCode.failed)
        }

        let eventLoops = ServingEventLoops()
        let heapTrimmer = HeapTrimmer()
        let tracker = ConnectionTracker(limit: config.maxConnections) { tracker in
            heapTrimmer.schedule { tracker.inFlight == 0 }
        }
        let mcp = MCPSupervisor(clientVersion: BuildInfo.version, logger: logger)
        let mcpReload = MCPReload(supervisor: mcp, configFile: configFile, initial: config.mcpServers)
        let sessions = SessionStorage(config: config, configFile: configFile, logger: logger)
        let tools = ServerTools(
            defaultWorkingDirectory: sessions.workingDirectory, logger: logger, logContent: config.logContent, mcp: mcp)
        let runner = RequestRunner(
            client: client, tools: tools, logger: logger, logContent: config.logContent,
            sessions: SessionService(store: sessions.store, locks: sessions.locks) { sessions.defaults })
        let requestCounter = Atomic<UInt64>(0)
        let pid = getpid()
        let makeID: @Sendable () -> RequestID = {
            .string("agentd-\(pid)-\(requestCounter.add(1, ordering: .relaxed).newValue)")
        }
        let metrics = DaemonMetrics()
        let audit = AuditLog(logger: logger)
        let registry = AgentRegistry(config: config, metrics: metrics) { runtime, binding in
            let handler = ConnectionHandler(
                route: .agent(runtime), runner: runner, tracker: tracker,
                decoder: RequestDecoder(makeID: makeID, acceptsCommands: false), audit: audit)
            return try await Listener.start(
                binding, on: eventLoops, maxLineBytes: { runtime.definition.limits.maxRequestBytes }, handler: handler)
        }
        let lastReload = LastReload()
        let config = config
        let logger = logger
        let notifier = notifier
        let reloads = ReloadCoordinator {
            notifier.reloading()
            var report = await mcpReload.load(
                into: registry, agentsDir: config.agentsDir, rereadConfig: true, logger: logger)
            // Both read agentd.yaml again: an invalid one is reported once.
            for diagnostic in sessions.reread(logger: logger) where !report.errors.contains(diagnostic) {
                report.errors.append(diagnostic)
            }
            metrics.reloaded(ok: report.ok)
            lastReload.report = report
            notifier.ready(status: registry.readyStatus(after: report, verb: "Reloaded"))
            return report
        }
        let control = ControlCommands(
            registry: registry, tracker: tracker, reloads: reloads, sessions: sessions.store, startedAt: .now,
            lastReload: lastReload, mcp: mcp, metrics: metrics, audit: audit)

        do {
            try Self.makeDirectory(config.socketDir)
            try Self.makeDirectory("\(config.socketDir)/agents")
        } catch {
            logger.critical("Cannot create the socket directory", metadata: ["error": "\(error)"])
            client.shutdown()
            throw StartFailure(exitCode: ExitCode.unavailable)
        }
        // Agents first, the control socket second: a `reload` arriving over it cannot race the
        // initial load.
        let initial = await mcpReload.load(
            into: registry, agentsDir: config.agentsDir, rereadConfig: false, logger: logger)
        let controlListener: Listener
        do {
            let handler = ConnectionHandler(
                route: .control(control), runner: runner, tracker: tracker,
                decoder: RequestDecoder(makeID: makeID, acceptsCommands: true), audit: audit)
            let group = config.controlSocket.group.flatMap { getgrnam($0)?.pointee.gr_gid }
            controlListener = try await Listener.start(
                SocketBinding(path: "\(config.socketDir)/control.sock", mode: config.controlSocket.mode, group: group),
                on: eventLoops,
                maxLineBytes: { max(registry.largestRequestBytes, Limits.defaultMaxRequestBytes) },
                handler: handler)
        } catch {
            logger.critical("Cannot bind the control socket", metadata: ["error": "\(error)"])
            await registry.stopAll()
            await mcp.stopAll()
            client.shutdown()
            throw StartFailure(exitCode: ExitCode.unavailable)
        }
        var metricsServer: MetricsServer?
        if let listen = config.metricsListen {
            do {
                let server = try await MetricsServer.start(listen, on: eventLoops.group) {
                    metrics.exposition(registry: registry, tracker: tracker)
                }
                logger.notice("Serving metrics", metadata: ["metrics.listen": "\(server.address)"])
                metricsServer = server
            } catch {
                logger.critical(
                    "Cannot bind metrics.listen", metadata: ["metrics.listen": "\(listen)", "error": "\(error)"])
                await controlListener.stop()
                await registry.stopAll()
                client.shutdown()
                throw StartFailure(exitCode: ExitCode.unavailable)
            }
        }
        lastReload.report = initial
        notifier.ready(status: registry.readyStatus(after: initial, verb: "Serving"))
        logger.notice(
            "Ready", metadata: ["agents": "\(registry.all.count)", "socket_dir": "\(config.socketDir)"])
        return Services(
            client: client, tracker: tracker, registry: registry, reloads: reloads, controlListener: controlListener,
            sessions: sessions, sweeper: sessions.sweep(every: .seconds(60), logger: logger), mcp: mcp,
            metricsSampler: metrics.sample(every: .seconds(5), sessions: sessions.store, mcp: mcp),
            metricsServer: metricsServer, audit: audit)
    }

    /// Reloads on SIGHUP and keeps the watchdog fed; returns at SIGTERM or SIGINT.
    private func serve(_ services: Services, signals: SignalEvents) async {
        let notifier = notifier
        let watchdog = notifier.watchdogInterval.map { interval in
            Task {
                while !Task.isCancelled {
                    notifier.watchdog()
                    try? await Task.sleep(for: interval / 2)
                }
            }
        }
        defer { watchdog?.cancel() }

        for await signal in signals.events {
            if signal == SIGHUP {
                services.audit.reloadRequested(bySignal: "SIGHUP")
                Task { _ = await services.reloads.reload() }
                continue
            }
            logger.notice("Shutting down", metadata: ["signal": "\(signal == SIGTERM ? "SIGTERM" : "SIGINT")"])
            return
        }
    }

    /// Stops accepting, lets requests in flight finish within `shutdown_grace`, ends the rest
    /// with `shutting_down`, and removes the socket files.
    private func drain(_ services: Services) async {
        let tracker = services.tracker
        notifier.stopping(status: "Stopping: finishing \(tracker.inFlight) requests")
        tracker.beginShutdown()
        await services.reloads.stop()
        await services.controlListener.stop()
        await services.registry.stopAll()
        let drained = await tracker.waitUntilDrained(within: config.shutdownGrace)
        if !drained {
            logger.warning(
                "Ending requests still running after shutdown_grace", metadata: ["in_flight": "\(tracker.inFlight)"])
            tracker.cancelAll(reason: .shuttingDown)
            _ = await tracker.waitUntilDrained(within: .seconds(5))
        }
        tracker.closeAll()
        // After the requests: their last tool calls were still using the servers.
        await services.mcp.stopAll()
        await services.metricsServer?.stop()
        await services.controlListener.connectionsEnded()
        for entry in services.registry.all { await entry.listener.connectionsEnded() }
        services.client.shutdown()
        services.sweeper.cancel()
        services.metricsSampler.cancel()
        // Checkpoints the WAL into the database file.
        await services.sessions.store.close()
        logger.notice("Stopped")
    }

    static func makeDirectory(_ path: String) throws(SocketError) {
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else { throw SocketError(path, "mkdir") }
    }
}
