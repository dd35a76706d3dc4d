import Foundation
import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// The sizes of one bench run: the full one, or the `--quick` one.
struct Plan {
    struct Level {
        var concurrency: Int
        var requestsPerClient: Int
        /// Each client sends a request every `pace`; nil: the next as soon as the previous is done.
        var pace: TimeAmount? = nil

        var load: String {
            pace.map { "paced: each every \($0.nanoseconds / 1_000_000) ms" } ?? "closed loop"
        }

        var label: String { pace == nil ? "\(concurrency)" : "\(concurrency), \(load)" }
    }

    var rounds: Int
    var levels: [Level]
    var words = 8
    var holdStreams: Int
    var holdPerConnection: Int
    var agentCounts: [Int]
    var startRounds: Int

    /// 100 clients paced at 5,000 requests/s, under half of what the machine serves closed loop:
    /// their latency is what agentd adds, not the queueing of a saturated machine.
    static let paced = Level(concurrency: 100, requestsPerClient: 50, pace: .milliseconds(20))

    /// Each run lasts about a second or more: runs of a fifth of a second made a p99 out of a
    /// single scheduling hiccup of the shared machine. 11 rounds: at 100 clients one round's
    /// throughput ratio ranged over 0.67–1.42 in a run of 7.
    static let full = Plan(
        rounds: 11,
        levels: [
            .init(concurrency: 1, requestsPerClient: 1000), paced, .init(concurrency: 100, requestsPerClient: 100),
            .init(concurrency: 1000, requestsPerClient: 10),
        ],
        holdStreams: 10_000, holdPerConnection: 10, agentCounts: [10, 100, 1000], startRounds: 3)

    static let quick = Plan(
        rounds: 2,
        levels: [
            .init(concurrency: 1, requestsPerClient: 100),
            Level(concurrency: 100, requestsPerClient: 5, pace: paced.pace),
            .init(concurrency: 100, requestsPerClient: 5), .init(concurrency: 1000, requestsPerClient: 1),
        ],
        holdStreams: 2000, holdPerConnection: 10, agentCounts: [10, 100, 1000], startRounds: 1)
}

/// One round of one concurrency level, both targets side by side.
struct RoundFigures {
    var direct: RunResult
    var agentd: RunResult
    /// agentd's CPU seconds over its run; the emulator's over each run.
    var agentdCPU: Double
    var emulatorCPUDirect: Double
    var emulatorCPUAgentd: Double
}

/// Everything measured, ready to print.
struct Results {
    var machine: Machine
    var plan: Plan
    var quick: Bool
    var idleRSS: Double = .nan
    var levels: [(Plan.Level, [RoundFigures])] = []
    var hold: HoldResult?
    var holdRSS: Double = .nan
    var holdBaseRSS: Double = .nan
    var holdEmulator = ""
    var afterHoldRSS: Double = .nan
    /// Agent count → exec→READY and SIGHUP→READY in milliseconds, one per round.
    /// Agent count, the socket directory's file system, exec→READY and SIGHUP→READY in
    /// milliseconds (one value per round).
    var startTimes: [(count: Int, fileSystem: String, start: Spread, reload: Spread)] = []
    var sessions: SessionFigures?
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
        let generator = LoadGenerator(threads: 2)
        defer { generator.shutdown() }
        try measureLoad(emulator: emulator, port: port, generator: generator, into: &results)
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
            requests += try generator.run(target, concurrency: clients, requestsPerClient: 20, words: plan.words)
                .samples.count
        }
        let cpu = daemon.child.cpuSeconds - cpuBefore
        progress("soak: \(requests) requests, agentd CPU \(fixed(cpu / Double(requests) * 1e6, 0)) µs/request")
    }

    /// For diagnosis: holds `streams` stalled streams through agentd, printing progress each second.
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
            for second in 1...120 {
                sleep(1)
                progress(
                    "\(second) s: agentd CPU \(fixed(ProcessFigures.cpuSeconds(pid: pid), 1)) s, "
                        + "RSS \(fixed(ProcessFigures.residentBytes(pid: pid) / 1_048_576, 1)) MiB, "
                        + "emulator \(emulatorStats(port: port))")
                if Thread.current.isCancelled { return }
            }
        }
        watcher.start()
        let (hold, channels) = try generator.hold(
            socketPath: daemon.socketPath("bench"), streams: streams, perConnection: plan.holdPerConnection, within: 180
        )
        watcher.cancel()
        progress("held \(hold.held), failed \(hold.failed) \(hold.errors) in \(fixed(hold.secondsToHold, 1)) s")
        generator.closeAll(channels)
    }

    /// agentd serving the one bench agent, its files and sockets named after `name`.
    private func startBenchDaemon(_ name: String, emulatorPort port: Int) throws -> DaemonUnderTest {
        let directory = try makeDaemonDirectory(name, agents: ["bench": Self.benchAgent])
        return try DaemonUnderTest(
            binary: "\(binaries)/agentd", directory: directory, socketDir: "\(socketRoot)/\(name)", emulatorPort: port,
            apiKey: Self.apiKey)
    }

    func startEmulator() throws -> (Child, port: Int) {
        let emulator = try Child(
            name: "emulator", executable: "\(binaries)/mistral-emulator",
            arguments: ["--port", "0", "--api-key", Self.apiKey], environment: [:], directory: workDirectory)
        guard let listening = emulator.waitForLine(startingWith: "listening on 127.0.0.1:", within: 30),
            let port = listening.split(separator: ":").last.flatMap({ Int($0) })
        else { throw BenchError("the emulator did not start:\n\(emulator.log)") }
        progress("emulator on port \(port)")
        return (emulator, port)
    }

    private func measureLoad(emulator: Child, port: Int, generator: LoadGenerator, into results: inout Results) throws {
        let daemon = try startBenchDaemon("load", emulatorPort: port)
        defer { daemon.child.stop() }
        guard FileManager.default.fileExists(atPath: daemon.socketPath("bench")) else {
            throw BenchError("agentd did not serve the bench agent:\n\(daemon.child.log)")
        }
        usleep(500_000)
        results.idleRSS = daemon.child.residentBytes
        progress(
            "agentd ready in \(fixed(daemon.readyMilliseconds, 1)) ms, idle RSS \(fixed(results.idleRSS / 1_048_576, 1)) MiB"
        )

        let direct = Target.direct(port: port, apiKey: Self.apiKey)
        let agentd = Target.agentd(socketPath: daemon.socketPath("bench"))
        for level in plan.levels {
            let perClient = level.requestsPerClient
            // Warm-up: connection pools, allocator, caches; not recorded.
            _ = try generator.run(direct, concurrency: level.concurrency, requestsPerClient: 1, words: plan.words)
            _ = try generator.run(agentd, concurrency: level.concurrency, requestsPerClient: 1, words: plan.words)
            var rounds: [RoundFigures] = []
            for round in 0..<plan.rounds {
                func measured(_ target: Target) throws -> (RunResult, agentd: Double, emulator: Double) {
                    let agentdBefore = daemon.child.cpuSeconds
                    let emulatorBefore = emulator.cpuSeconds
                    let result = try generator.run(
                        target, concurrency: level.concurrency, requestsPerClient: perClient, words: plan.words,
                        pace: level.pace)
                    return (result, daemon.child.cpuSeconds - agentdBefore, emulator.cpuSeconds - emulatorBefore)
                }
                // Alternate which side goes first so drift in the machine's load cancels.
                let first = try measured(round % 2 == 0 ? direct : agentd)
                let second = try measured(round % 2 == 0 ? agentd : direct)
                let (directRun, agentdRun) = round % 2 == 0 ? (first, second) : (second, first)
                rounds.append(
                    RoundFigures(
                        direct: directRun.0, agentd: agentdRun.0, agentdCPU: agentdRun.agentd,
                        emulatorCPUDirect: directRun.emulator, emulatorCPUAgentd: agentdRun.emulator))
                progress(
                    "c=\(level.label) round \(round + 1): direct \(Int(directRun.0.requestsPerSecond)) req/s, "
                        + "agentd \(Int(agentdRun.0.requestsPerSecond)) req/s, failures \(directRun.0.failures)/\(agentdRun.0.failures), "
                        + "busy connects retried so far \(generator.busyRetries.load(ordering: .relaxed))"
                )
            }
            results.levels.append((level, rounds))
        }

        results.holdBaseRSS = daemon.child.residentBytes
        progress("holding \(plan.holdStreams) streams…")
        let (hold, channels) = try generator.hold(
            socketPath: daemon.socketPath("bench"), streams: plan.holdStreams, perConnection: plan.holdPerConnection,
            within: 180)
        usleep(500_000)
        results.hold = hold
        results.holdRSS = daemon.child.residentBytes
        results.holdEmulator = emulatorStats(port: port)
        progress(
            "held \(hold.held), failed \(hold.failed) \(hold.errors), RSS \(fixed(results.holdRSS / 1_048_576, 1)) MiB, emulator \(results.holdEmulator)"
        )
        generator.closeAll(channels)
        // Long enough for the cancellations to reach the upstream and for agentd to give the
        // freed heap back: it trims 1 s after going idle, at most every 10 s (HeapTrimmer).
        usleep(12_000_000)
        results.afterHoldRSS = daemon.child.residentBytes
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

    func makeDaemonDirectory(_ name: String, agents: [String: String]) throws -> String {
        let directory = "\(workDirectory)/\(name)"
        try FileManager.default.createDirectory(atPath: "\(directory)/agents.d", withIntermediateDirectories: true)
        try Self.daemonConfig.write(toFile: "\(directory)/agentd.yaml", atomically: false, encoding: .utf8)
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
