import AgentCore
import AgentProtocol
import Curl
import Dispatch
import Glibc
import LLM
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Systemd

/// The running service (CONTRACT §6): binds every socket, then READY; SIGHUP and `reload`
/// reload; SIGTERM and SIGINT drain within `shutdown_grace` and exit.
public struct Daemon: Sendable {
    /// sysexits(3) codes the daemon exits with.
    public enum ExitCode {
        public static let ok: Int32 = 0
        /// A socket could not be bound (for instance another agentd serves the same directory).
        public static let unavailable: Int32 = 69
        public static let config: Int32 = 78
    }

    let config: DaemonConfig
    let logger: Logger

    public init(config: DaemonConfig) {
        self.config = config
        var logger = Logger(label: "agentd")
        logger.logLevel = config.logLevel.swiftLogLevel
        self.logger = logger
    }

    /// Serves until SIGTERM or SIGINT; returns the process exit status.
    public func run() async -> Int32 {
        let notifier = SystemdNotifier()
        // Signal dispositions first: a SIGHUP from `systemctl reload` right after start must
        // reload, never kill.
        let signals = SignalEvents([SIGHUP, SIGTERM, SIGINT])

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

        let transport: CurlClient
        do {
            transport = try CurlClient()
        } catch {
            logger.critical("Cannot start the HTTP client", metadata: ["error": "\(error)"])
            return 1
        }
        defer { transport.shutdown() }
        let client = MistralClient(
            baseURL: settings.baseURL, apiKey: settings.apiKey, transport: transport, logger: logger)
        let eventLoops = ServingEventLoops()

        let heapTrimmer = HeapTrimmer()
        let tracker = ConnectionTracker(limit: config.maxConnections) { tracker in
            heapTrimmer.schedule { tracker.inFlight == 0 }
        }
        let runner = RequestRunner(client: client, logger: logger, logContent: config.logContent)
        let requestCounter = Atomic<UInt64>(0)
        let pid = getpid()
        let makeID: @Sendable () -> RequestID = {
            .string("agentd-\(pid)-\(requestCounter.add(1, ordering: .relaxed).newValue)")
        }
        let lastReload = LastReload()
        let config = config
        let logger = logger

        // The registry binds agent sockets through a handler that needs the control commands,
        // which need the registry: the box breaks the cycle once both exist.
        let controlBox = Mutex<ControlCommands?>(nil)
        let registry = AgentRegistry(config: config) { runtime, binding in
            let handler = ConnectionHandler(
                route: .agent(runtime), runner: runner, control: controlBox.withLock { $0! }, tracker: tracker,
                decoder: WireDecoder(makeID: makeID, acceptsCommands: false))
            return try await Listener.start(
                binding, on: eventLoops, maxLineBytes: { runtime.definition.limits.maxRequestBytes }, handler: handler)
        }
        let reloads = ReloadCoordinator {
            notifier.reloading()
            let report = await Self.reload(registry: registry, config: config, logger: logger)
            lastReload.report = report
            notifier.ready(status: Self.status(registry: registry, report: report, verb: "Reloaded"))
            return report
        }
        let control = ControlCommands(
            registry: registry, tracker: tracker, reloads: reloads, startedAt: .now, lastReload: lastReload)
        controlBox.withLock { $0 = control }

        // Bind everything, then READY.
        do {
            try Self.makeDirectory(config.socketDir)
            try Self.makeDirectory("\(config.socketDir)/agents")
        } catch {
            logger.critical("Cannot create the socket directory", metadata: ["error": "\(error)"])
            return ExitCode.unavailable
        }
        // Agents first, the control socket second: a `reload` arriving over it cannot race the
        // initial load.
        let initial = await Self.reload(registry: registry, config: config, logger: logger)
        let controlListener: Listener
        do {
            let handler = ConnectionHandler(
                route: .control, runner: runner, control: control, tracker: tracker,
                decoder: WireDecoder(makeID: makeID, acceptsCommands: true))
            let group = config.controlSocket.group.flatMap { getgrnam($0)?.pointee.gr_gid }
            controlListener = try await Listener.start(
                SocketBinding(path: "\(config.socketDir)/control.sock", mode: config.controlSocket.mode, group: group),
                on: eventLoops, maxLineBytes: { max(registry.largestRequestBytes, 1_048_576) }, handler: handler)
        } catch {
            logger.critical("Cannot bind the control socket", metadata: ["error": "\(error)"])
            await registry.stopAll()
            return ExitCode.unavailable
        }
        lastReload.report = initial
        notifier.ready(status: Self.status(registry: registry, report: initial, verb: "Serving"))
        logger.notice(
            "Ready", metadata: ["agents": "\(registry.all.count)", "socket_dir": "\(config.socketDir)"])

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
                logger.info("SIGHUP: reloading")
                Task { _ = await reloads.reload() }
                continue
            }
            logger.notice("Shutting down", metadata: ["signal": "\(signal == SIGTERM ? "SIGTERM" : "SIGINT")"])
            break
        }

        notifier.stopping(status: "Stopping: finishing \(tracker.inFlight) requests")
        tracker.beginShutdown()
        await reloads.stop()
        await controlListener.stop()
        await registry.stopAll()
        let drained = await tracker.waitUntilDrained(within: config.shutdownGrace)
        if !drained {
            logger.warning(
                "Ending requests still running after shutdown_grace", metadata: ["in_flight": "\(tracker.inFlight)"])
            tracker.cancelAll(reason: .shuttingDown)
            _ = await tracker.waitUntilDrained(within: .seconds(5))
        }
        tracker.closeAll()
        await controlListener.connectionsEnded()
        for entry in registry.all { await entry.listener.connectionsEnded() }
        logger.notice("Stopped")
        return ExitCode.ok
    }

    /// Loads the agents directory and applies it; a directory that cannot be read keeps
    /// everything as it was.
    static func reload(registry: AgentRegistry, config: DaemonConfig, logger: Logger) async -> ReloadReport {
        let directory: AgentDirectory
        do {
            directory = try AgentLoader.loadDirectory(config.agentsDir)
        } catch {
            var report = ReloadReport(time: Double(time(nil)))
            report.errors = [error]
            report.unchanged = registry.all.map(\.runtime.name)
            logger.error("Reload failed: agents directory unreadable", metadata: ["error": "\(error)"])
            return report
        }
        let report = await registry.apply(directory)
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

    static func status(registry: AgentRegistry, report: ReloadReport, verb: String) -> String {
        let count = registry.all.count
        let base = "\(verb) \(count) agent\(count == 1 ? "" : "s")"
        return report.ok ? base : "\(base); \(report.errors.count) file error(s), see journal"
    }

    static func makeDirectory(_ path: String) throws(SocketError) {
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else { throw SocketError(path, "mkdir") }
    }
}

/// Delivers the named signals as an async sequence instead of their default actions.
final class SignalEvents {
    let events: AsyncStream<Int32>
    private let sources: [any DispatchSourceSignal]

    init(_ numbers: [Int32]) {
        let (events, continuation) = AsyncStream<Int32>.makeStream()
        self.events = events
        sources = numbers.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            return source
        }
    }

    deinit {
        for source in sources { source.cancel() }
    }
}

extension LogLevel {
    /// swift-log's level for the contract's `log_level`.
    public var swiftLogLevel: Logger.Level {
        switch self {
        case .debug: .debug
        case .info: .info
        case .notice: .notice
        case .warning: .warning
        case .error: .error
        }
    }
}
