import Foundation
import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// The sizes of one bench run: the full one, or the `--quick` one.
struct Plan {
    /// How the emulator writes an unpaced stream (its `--stream-writes`).
    enum Upstream: String {
        /// Each SSE event in a write of its own, as Mistral streams.
        case perEvent = "per-event"
        /// The whole stream in one write, as the emulator did before issue 21: the runs before
        /// it were measured this way.
        case batched
    }

    struct Level {
        var concurrency: Int
        var requestsPerClient: Int
        /// Each client sends a request every `pace`; nil: the next as soon as the previous is done.
        var pace: TimeAmount? = nil
        var reply = ReplyShape(words: 8)
        var upstream = Upstream.perEvent

        var load: String {
            pace.map { "paced: each every \($0.nanoseconds / 1_000_000) ms" } ?? "closed loop"
        }

        var label: String {
            var parts = ["\(concurrency)"]
            if pace != nil { parts.append(load) }
            if reply.words != 8 { parts.append("\(reply.words) chunks") }
            if upstream == .batched { parts.append("batched upstream") }
            return parts.joined(separator: ", ")
        }

        /// The realistic short-reply level at `concurrency` clients, closed loop.
        func isShort(_ clients: Int) -> Bool {
            concurrency == clients && pace == nil && reply.words == 8 && upstream == .perEvent
        }
    }

    /// Streams held open at once, each paced like a model generating its reply.
    struct PacedHold {
        var streams: Int
        var reply: ReplyShape
        /// How long CPU and chunks are counted once every stream is under way.
        var window: Double
        /// nginx is measured too (for the per-chunk ratio); not at 10,000, where only agentd's
        /// memory is the target.
        var withNginx: Bool
    }

    var rounds: Int
    var levels: [Level]
    var words = 8
    var pacedHolds: [PacedHold]
    var holdPerConnection: Int
    var agentCounts: [Int]
    var startRounds: Int
    var metricsRequests: Int

    /// 100 clients paced at 1,000 requests/s, well under what the machine serves closed loop:
    /// their latency is what a hop adds, not the queueing of a saturated machine. (Until issue
    /// 21 the pace was 20 ms; with one write per event, 5,000 requests/s saturated the 2 cores
    /// through agentd, and its paced p99 was queueing, 30–35 ms.)
    static let paced = Level(concurrency: 100, requestsPerClient: 20, pace: .milliseconds(100))

    /// 2,000 streams at 10 tokens/s (20,000 chunks a second) and 10,000 at one token a second.
    /// At 50 tokens/s, 2,000 streams are 100,000 chunks a second, more than the emulator writes
    /// here beside the generator and a hop on the same 2 cores: in a trial nginx got 1,576 of
    /// the 2,000 under way and agentd's first-byte timeouts ended 1,594. The 10,000 are about
    /// memory.
    static let holds = [
        PacedHold(
            streams: 2000, reply: ReplyShape(words: 600, tokenInterval: .milliseconds(100)), window: 5,
            withNginx: true),
        PacedHold(
            streams: 10_000, reply: ReplyShape(words: 600, tokenInterval: .milliseconds(1000)), window: 3,
            withNginx: false),
    ]

    /// Each run lasts about a second or more: runs of a fifth of a second made a p99 out of a
    /// single scheduling hiccup of the shared machine. 7 rounds of three hops each: 11 made a
    /// full run last over ten minutes once nginx and the long replies were added.
    static let full = Plan(
        rounds: 7,
        levels: [
            .init(concurrency: 1, requestsPerClient: 1000), paced, .init(concurrency: 100, requestsPerClient: 100),
            .init(concurrency: 100, requestsPerClient: 1, reply: ReplyShape(words: 500)),
            .init(concurrency: 1000, requestsPerClient: 10),
            .init(concurrency: 100, requestsPerClient: 100, upstream: .batched),
        ],
        pacedHolds: holds, holdPerConnection: 10, agentCounts: [10, 100, 1000], startRounds: 3,
        metricsRequests: 1000)

    static let quick = Plan(
        rounds: 2,
        levels: [
            .init(concurrency: 1, requestsPerClient: 100),
            Level(concurrency: 100, requestsPerClient: 3, pace: paced.pace),
            .init(concurrency: 100, requestsPerClient: 5),
            .init(concurrency: 100, requestsPerClient: 1, reply: ReplyShape(words: 500)),
            .init(concurrency: 1000, requestsPerClient: 1),
            .init(concurrency: 100, requestsPerClient: 5, upstream: .batched),
        ],
        pacedHolds: holds.map { hold in
            var quick = hold
            quick.streams = min(hold.streams, 2000)
            quick.window = 2
            return quick
        }, holdPerConnection: 10, agentCounts: [10, 100, 1000], startRounds: 1, metricsRequests: 200)
}

/// One run of one level through one hop, with the CPU each process spent on it.
struct HopRun {
    var result: RunResult
    /// The hop's own CPU seconds over the run: agentd's, nginx's (all its processes), 0 direct.
    var hopCPU: Double
    var emulatorCPU: Double
}

/// One round of one concurrency level, the three hops side by side.
struct RoundFigures {
    var direct: HopRun
    var nginx: HopRun
    var agentd: HopRun
}

/// The hops a request can take to one emulator.
enum Hop: CaseIterable {
    case direct, nginx, agentd
}

/// What holding paced streams through one hop measured.
struct PacedHoldFigures {
    var hold: HoldResult
    var rssBefore: Double
    var rssHeld: Double
    /// Text chunks delivered to the clients, and the hop's CPU seconds, over the window.
    var chunks: Int
    var cpu: Double
    var windowSeconds: Double
    var emulatorWhileHeld: String
    /// agentd's RSS 12 s after the clients closed (only measured for agentd).
    var rssAfterClose: Double?

    var rssPerStream: Double { (rssHeld - rssBefore) / Double(max(hold.held, 1)) }
    var cpuPerChunk: Double { cpu / Double(max(chunks, 1)) }
}

/// Time to first text with the metrics listener scraped and without one (issue 20).
struct MetricsFigures {
    var off: [RunResult] = []
    var on: [RunResult] = []
    var cpuOff: [Double] = []
    var cpuOn: [Double] = []
    var scrapes = 0
    var failedScrapes = 0
}

/// Everything measured, ready to print.
struct Results {
    var machine: Machine
    var plan: Plan
    var quick: Bool
    var idleRSS: Double = .nan
    var levels: [(Plan.Level, [RoundFigures])] = []
    /// Per paced hold of the plan: nginx's figures (when measured) and agentd's.
    var pacedHolds: [(Plan.PacedHold, nginx: PacedHoldFigures?, agentd: PacedHoldFigures)] = []
    /// Agent count, the socket directory's file system, exec→READY and SIGHUP→READY in
    /// milliseconds (one value per round).
    var startTimes: [(count: Int, fileSystem: String, start: Spread, reload: Spread)] = []
    var sessions: SessionFigures?
    var metrics: MetricsFigures?
}

/// A bench-owned agentd (with its own directory, config and NOTIFY_SOCKET).
final class DaemonUnderTest {
    let child: Child
    let notify: NotifyListener
    let socketDir: String
    /// Milliseconds from exec to READY=1.
    let readyMilliseconds: Double

    init(binary: String, directory: String, socketDir: String, emulatorPort: Int, apiKey: String) throws {
        notify = try NotifyListener(path: "\(directory)/notify")
        self.socketDir = socketDir
        child = try Child(
            name: "agentd", executable: binary,
            arguments: [
                "--config", "\(directory)/agentd.yaml", "--agents-dir", "\(directory)/agents.d", "--socket-dir",
                socketDir, "--state-dir", "\(directory)/state",
            ],
            environment: [
                "NOTIFY_SOCKET": notify.path, "MISTRAL_API_KEY": apiKey,
                "MISTRAL_BASE_URL": "http://127.0.0.1:\(emulatorPort)", "PATH": "/usr/bin:/bin",
            ],
            directory: directory)
        guard let ready = notify.wait(for: "READY=1", within: 60) else {
            throw BenchError("agentd did not become ready:\n\(child.log)")
        }
        readyMilliseconds = Double(ready - child.launchedAt) / 1e6
    }

    /// Milliseconds from SIGHUP to the READY=1 that ends the reload.
    func reload() throws -> Double {
        notify.drain()
        let sent = monotonicNanoseconds()
        child.signal(SIGHUP)
        guard notify.wait(for: "RELOADING=1", within: 60) != nil, let ready = notify.wait(for: "READY=1", within: 60)
        else {
            throw BenchError("no RELOADING=1/READY=1 after SIGHUP:\n\(child.log)")
        }
        return Double(ready - sent) / 1e6
    }

    func socketPath(_ agent: String) -> String { "\(socketDir)/agents/\(agent).sock" }
}

/// The bench: builds the directories, starts the emulator and agentd, runs every phase.
struct Bench {
    let binaries: String
    let plan: Plan
    let quick: Bool
    let workDirectory: String
    /// Where sockets go: on tmpfs when there is one, as /run is on a systemd host.
    let socketRoot: String
    static let apiKey = "bench-key"

    /// The one agent the load goes to: limits high enough that only agentd itself can be the cap
    /// (10,000 is the most `max_concurrent` accepts).
    static let benchAgent = """
        model: mistral-small-latest
        socket: {mode: "0600"}
        limits: {max_concurrent: 10000, queue: 0, timeout: 10m, idle_timeout: 10m}
        retry: {attempts: 1}
        """

    static let daemonConfig = """
        max_connections: 20000
        log_level: warning
        shutdown_grace: 1s
        """

    func run(swiftVersion: String) throws -> Results {
        var results = Results(machine: .current(swiftVersion: swiftVersion), plan: plan, quick: quick)
        let (emulator, port) = try startEmulator()
        defer { emulator.stop() }
        let (batchedEmulator, batchedPort) = try startEmulator(.batched)
        defer { batchedEmulator.stop() }
        let proxy = try ReferenceProxy(
            upstreamPorts: [port, batchedPort], directory: workDirectory, socketDirectory: socketRoot)
        defer { proxy.child.stop() }
        let daemon = try startBenchDaemon("load", emulatorPort: port)
        defer { daemon.child.stop() }
        usleep(500_000)
        results.idleRSS = daemon.child.residentBytes
        progress(
            "agentd ready in \(fixed(daemon.readyMilliseconds, 1)) ms, idle RSS \(fixed(results.idleRSS / 1_048_576, 1)) MiB"
        )
        let batchedDaemon = try startBenchDaemon("batched", emulatorPort: batchedPort)
        defer { batchedDaemon.child.stop() }
        let generator = LoadGenerator(threads: 2)
        defer { generator.shutdown() }
        let upstreams: [Plan.Upstream: Upstream] = [
            .perEvent: Upstream(emulator: emulator, port: port, daemon: daemon, proxy: proxy),
            .batched: Upstream(emulator: batchedEmulator, port: batchedPort, daemon: batchedDaemon, proxy: proxy),
        ]
        for level in plan.levels {
            let upstream = upstreams[level.upstream]!
            results.levels.append((level, try measure(level, through: upstream, generator: generator)))
        }
        batchedDaemon.child.stop()
        batchedEmulator.stop()
        for hold in plan.pacedHolds {
            let upstream = upstreams[.perEvent]!
            let nginx = try hold.withNginx ? measure(hold, through: .nginx, of: upstream, generator: generator) : nil
            let agentd = try measure(hold, through: .agentd, of: upstream, generator: generator)
            results.pacedHolds.append((hold, nginx, agentd))
        }
        proxy.child.stop()
        results.metrics = try measureMetrics(port: port, daemon: daemon, generator: generator)
        try measureSessions(port: port, into: &results)
        try measureStartAndReload(port: port, into: &results)
        results.machine.runEnded()
        return results
    }

    /// For profiling: `clients` clients send requests through agentd for `seconds`, so a
    /// profiler can attach to the pid printed first (`perf record -g -p PID`).
    func soak(seconds: Double, clients: Int) throws {
        let (emulator, port) = try startEmulator()
        defer { emulator.stop() }
        let daemon = try startBenchDaemon("soak", emulatorPort: port)
        defer { daemon.child.stop() }
        progress("agentd pid \(daemon.child.pid)")
        let generator = LoadGenerator(threads: 2)
        defer { generator.shutdown() }
        let target = Target.agentd(socketPath: daemon.socketPath("bench"))
        let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
        let cpuBefore = daemon.child.cpuSeconds
        var requests = 0
        while monotonicNanoseconds() < deadline {
            requests += try generator.run(
                target, concurrency: clients, requestsPerClient: 20, reply: ReplyShape(words: plan.words)
            ).samples.count
        }
        let cpu = daemon.child.cpuSeconds - cpuBefore
        progress("soak: \(requests) requests, agentd CPU \(fixed(cpu / Double(requests) * 1e6, 0)) µs/request")
    }

    /// For diagnosis: holds `streams` paced streams through agentd (those of the plan's largest
    /// hold), printing progress each second, and keeps them 10 s once held.
    func holdOnly(streams: Int) throws {
        let (emulator, port) = try startEmulator()
        defer { emulator.stop() }
        let daemon = try startBenchDaemon("hold", emulatorPort: port)
        defer { daemon.child.stop() }
        progress("agentd pid \(daemon.child.pid)")
        let generator = LoadGenerator(threads: 2)
        defer { generator.shutdown() }
        let pid = daemon.child.pid
        let watcher = Thread {
            var last = ProcessFigures.cpuSeconds(pid: pid)
            for second in 1...120 {
                sleep(1)
                let cpu = ProcessFigures.cpuSeconds(pid: pid)
                progress(
                    "\(second) s: agentd CPU \(fixed(cpu - last, 2)) s in the last second, "
                        + "RSS \(fixed(ProcessFigures.residentBytes(pid: pid) / 1_048_576, 1)) MiB, "
                        + "emulator \(emulatorStats(port: port))")
                last = cpu
                if Thread.current.isCancelled { return }
            }
        }
        watcher.start()
        let held = try generator.hold(
            .agentd(socketPath: daemon.socketPath("bench")), streams: streams, perConnection: plan.holdPerConnection,
            reply: plan.pacedHolds.last!.reply, within: 180)
        progress(
            "held \(held.result.held), failed \(held.result.failed) \(held.result.errors) in \(fixed(held.result.secondsToHold, 1)) s"
        )
        let chunks = held.counters.chunks.load(ordering: .relaxed)
        let cpu = daemon.child.cpuSeconds
        sleep(10)
        let delivered = held.counters.chunks.load(ordering: .relaxed) - chunks
        progress(
            "over 10 s: \(delivered) chunks, agentd \(fixed((daemon.child.cpuSeconds - cpu) / Double(max(delivered, 1)) * 1e6, 2)) µs CPU per chunk"
        )
        generator.closeAll(held.channels)
        // The watcher goes on while the cancellations reach the upstream and agentd trims its
        // heap, twice if it stays idle (1 s and 11 s after its last request ended, HeapTrimmer).
        sleep(25)
        watcher.cancel()
    }

    /// agentd serving the one bench agent, its files and sockets named after `name`.
    func startBenchDaemon(_ name: String, emulatorPort port: Int, config: String = "") throws -> DaemonUnderTest {
        let directory = try makeDaemonDirectory(name, agents: ["bench": Self.benchAgent], config: config)
        return try DaemonUnderTest(
            binary: "\(binaries)/agentd", directory: directory, socketDir: "\(socketRoot)/\(name)", emulatorPort: port,
            apiKey: Self.apiKey)
    }

    func startEmulator(_ writes: Plan.Upstream = .perEvent) throws -> (Child, port: Int) {
        let emulator = try Child(
            name: "emulator-\(writes.rawValue)", executable: "\(binaries)/mistral-emulator",
            arguments: ["--port", "0", "--api-key", Self.apiKey, "--stream-writes", writes.rawValue], environment: [:],
            directory: workDirectory)
        guard let listening = emulator.waitForLine(startingWith: "listening on 127.0.0.1:", within: 30),
            let port = listening.split(separator: ":").last.flatMap({ Int($0) })
        else { throw BenchError("the emulator did not start:\n\(emulator.log)") }
        progress("emulator (\(writes.rawValue) writes) on port \(port)")
        return (emulator, port)
    }

    /// One emulator and the ways to it.
    struct Upstream {
        let emulator: Child
        let port: Int
        let daemon: DaemonUnderTest
        let proxy: ReferenceProxy

        func target(_ hop: Hop) -> Target {
            switch hop {
            case .direct: .direct(port: port, apiKey: Bench.apiKey)
            case .nginx: .nginx(socketPath: proxy.socketPaths[port]!, apiKey: Bench.apiKey)
            case .agentd: .agentd(socketPath: daemon.socketPath("bench"))
            }
        }

        /// The CPU seconds of the process that is `hop`; 0 for none.
        func cpuSeconds(_ hop: Hop) -> Double {
            switch hop {
            case .direct: 0
            case .nginx: proxy.cpuSeconds
            case .agentd: daemon.child.cpuSeconds
            }
        }

        func residentBytes(_ hop: Hop) -> Double {
            switch hop {
            case .direct: 0
            case .nginx: proxy.residentBytes
            case .agentd: daemon.child.residentBytes
            }
        }
    }

    /// `plan.rounds` rounds of `level`, each running it direct, through nginx and through agentd;
    /// which goes first rotates, so drift in the machine's load lands on all three.
    private func measure(_ level: Plan.Level, through upstream: Upstream, generator: LoadGenerator) throws
        -> [RoundFigures]
    {
        func run(_ hop: Hop, requestsPerClient: Int) throws -> HopRun {
            let hopBefore = upstream.cpuSeconds(hop)
            let emulatorBefore = upstream.emulator.cpuSeconds
            let result = try generator.run(
                upstream.target(hop), concurrency: level.concurrency, requestsPerClient: requestsPerClient,
                reply: level.reply, pace: level.pace)
            return HopRun(
                result: result, hopCPU: upstream.cpuSeconds(hop) - hopBefore,
                emulatorCPU: upstream.emulator.cpuSeconds - emulatorBefore)
        }
        // Warm-up: connection pools, allocator, caches; not recorded.
        for hop in Hop.allCases { _ = try run(hop, requestsPerClient: 1) }
        var rounds: [RoundFigures] = []
        for round in 0..<plan.rounds {
            var runs: [Hop: HopRun] = [:]
            for offset in 0..<Hop.allCases.count {
                let hop = Hop.allCases[(round + offset) % Hop.allCases.count]
                runs[hop] = try run(hop, requestsPerClient: level.requestsPerClient)
            }
            let figures = RoundFigures(direct: runs[.direct]!, nginx: runs[.nginx]!, agentd: runs[.agentd]!)
            rounds.append(figures)
            progress(
                "c=\(level.label) round \(round + 1): req/s direct \(Int(figures.direct.result.requestsPerSecond)), "
                    + "nginx \(Int(figures.nginx.result.requestsPerSecond)), agentd \(Int(figures.agentd.result.requestsPerSecond)); "
                    + "failures \(figures.direct.result.failures)/\(figures.nginx.result.failures)/\(figures.agentd.result.failures), "
                    + "busy connects retried so far \(generator.busyRetries.load(ordering: .relaxed))")
        }
        return rounds
    }

    /// Holds `hold.streams` paced streams through `hop`, counts CPU and chunks over its window,
    /// then closes them and waits until the emulator has seen every stream end.
    private func measure(
        _ hold: Plan.PacedHold, through hop: Hop, of upstream: Upstream, generator: LoadGenerator
    ) throws -> PacedHoldFigures {
        let rssBefore = upstream.residentBytes(hop)
        progress("holding \(hold.streams) paced streams through \(hop)…")
        let held = try generator.hold(
            upstream.target(hop), streams: hold.streams, perConnection: plan.holdPerConnection, reply: hold.reply,
            within: 180)
        usleep(1_000_000)
        let chunksBefore = held.counters.chunks.load(ordering: .relaxed)
        let cpuBefore = upstream.cpuSeconds(hop)
        let windowStart = monotonicNanoseconds()
        usleep(UInt32(hold.window * 1e6))
        let cpu = upstream.cpuSeconds(hop) - cpuBefore
        let chunks = held.counters.chunks.load(ordering: .relaxed) - chunksBefore
        let window = Double(monotonicNanoseconds() - windowStart) / 1e9
        var figures = PacedHoldFigures(
            hold: held.result, rssBefore: rssBefore, rssHeld: upstream.residentBytes(hop), chunks: chunks, cpu: cpu,
            windowSeconds: window, emulatorWhileHeld: emulatorStats(port: upstream.port))
        progress(
            "held \(held.result.held), failed \(held.result.failed) \(held.result.errors), "
                + "RSS \(fixed(figures.rssHeld / 1_048_576, 1)) MiB, \(chunks) chunks in \(fixed(window, 1)) s, "
                + "\(fixed(figures.cpuPerChunk * 1e6, 2)) µs CPU per chunk, emulator \(figures.emulatorWhileHeld)")
        generator.closeAll(held.channels)
        if hop == .agentd {
            // Long enough for the cancellations to reach the upstream and for agentd to give the
            // freed heap back: it trims 1 s after going idle, at most every 10 s (HeapTrimmer).
            usleep(12_000_000)
            figures.rssAfterClose = upstream.residentBytes(hop)
        }
        waitForIdle(port: upstream.port)
        return figures
    }

    /// Waits (up to 30 s) until the emulator writes no stream: the next phase starts on a quiet upstream.
    private func waitForIdle(port: Int) {
        for _ in 0..<300 {
            if emulatorStats(port: port).contains(#""active_streams":0,"#) { return }
            usleep(100_000)
        }
        progress("the emulator still had streams open 30 s after the clients closed")
    }

    private func measureStartAndReload(port: Int, into results: inout Results) throws {
        // Every count with the sockets on tmpfs; 1,000 again on the work directory's file system
        // when that differs, since binding a socket creates an inode there.
        var runs = plan.agentCounts.map { ($0, socketRoot) }
        if fileSystemName(workDirectory) != fileSystemName(socketRoot), let largest = plan.agentCounts.max() {
            runs.append((largest, workDirectory))
        }
        for (count, root) in runs {
            var agents: [String: String] = [:]
            for index in 0..<count {
                agents[String(format: "agent-%04d", index)] = """
                    description: Generated agent \(index)
                    model: mistral-small-latest
                    temperature: 0.3
                    system: You are generated agent number \(index).
                    limits: {max_concurrent: 4, queue: 8}
                    """
            }
            let name = "agents-\(count)-\(root == socketRoot ? "a" : "b")"
            let directory = try makeDaemonDirectory(name, agents: agents)
            var starts: [Double] = []
            var reloads: [Double] = []
            for _ in 0..<plan.startRounds {
                let daemon = try DaemonUnderTest(
                    binary: "\(binaries)/agentd", directory: directory, socketDir: "\(root)/\(name)",
                    emulatorPort: port,
                    apiKey: Self.apiKey)
                starts.append(daemon.readyMilliseconds)
                for _ in 0..<plan.startRounds { reloads.append(try daemon.reload()) }
                daemon.child.stop()
            }
            let fileSystem = fileSystemName(root)
            results.startTimes.append((count, fileSystem, Spread(values: starts), Spread(values: reloads)))
            progress(
                "\(count) agents, sockets on \(fileSystem): READY \(Spread(values: starts).formatted(1)) ms, "
                    + "reload \(Spread(values: reloads).formatted(1)) ms")
        }
    }

    func makeDaemonDirectory(_ name: String, agents: [String: String], config: String = "") throws -> String {
        let directory = "\(workDirectory)/\(name)"
        try FileManager.default.createDirectory(atPath: "\(directory)/agents.d", withIntermediateDirectories: true)
        try (Self.daemonConfig + "\n" + config).write(
            toFile: "\(directory)/agentd.yaml", atomically: false, encoding: .utf8)
        for (agent, yaml) in agents {
            try yaml.write(toFile: "\(directory)/agents.d/\(agent).yaml", atomically: false, encoding: .utf8)
        }
        return directory
    }
}

/// "tmpfs", "ext4", … for the file system holding `path`: the type of the longest mount point
/// in /proc/mounts that contains it.
func fileSystemName(_ path: String) -> String {
    let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
    var best = (length: -1, type: "unknown")
    for line in mounts.split(separator: "\n") {
        let fields = line.split(separator: " ")
        guard fields.count > 2 else { continue }
        let point = String(fields[1])
        let contains = path == point || path.hasPrefix(point == "/" ? "/" : point + "/")
        if contains, point.count > best.length { best = (point.count, String(fields[2])) }
    }
    return best.type
}

/// Progress on stderr; the table goes to stdout.
func progress(_ message: String) {
    FileHandle.standardError.write(Data("bench: \(message)\n".utf8))
}
