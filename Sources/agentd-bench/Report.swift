import Foundation

/// The markdown tables (printed, and written into BENCHMARKS.md between the bench's markers).
struct Report {
    let results: Results

    private static let percentiles: [(String, Double)] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)]

    var markdown: String {
        var text = "## Machine\n\n\(results.machine.markdown)\n\n"
        text += results.quick ? "Quick run (`BENCH_QUICK=1`): fewer rounds and requests.\n\n" : ""
        text +=
            latency + "\n" + throughput + "\n" + concurrency + "\n" + sessions + "\n" + startAndReload + "\n" + targets
        return text
    }

    /// Per round: agentd's percentile minus direct's, for one metric.
    private func added(_ rounds: [RoundFigures], _ fraction: Double, _ metric: (Sample) -> Double) -> Spread {
        Spread(
            values: rounds.map {
                (percentile($0.agentd.samples.map(metric), fraction) ?? .nan)
                    - (percentile($0.direct.samples.map(metric), fraction) ?? .nan)
            })
    }

    private func absolute(
        _ rounds: [RoundFigures], _ fraction: Double, _ run: (RoundFigures) -> RunResult, _ metric: (Sample) -> Double
    ) -> Spread {
        Spread(values: rounds.map { percentile(run($0).samples.map(metric), fraction) ?? .nan })
    }

    private var latency: String {
        var text = """
            ## Added latency (through agentd − direct to the emulator), milliseconds

            Each request asks for \(results.plan.words) words (one SSE chunk each). Per round, the percentile of the
            agentd run minus the same percentile of the direct run; the table gives the median over
            \(results.plan.rounds) interleaved rounds and, in parentheses, the min–max over the rounds. Clients
            send their next request as soon as the previous one is done (closed loop, which at 100
            and 1,000 clients keeps the machine's 2 cores busy), or, where a pace is given, one
            request each per interval, so that what through-agentd adds is not queueing for the CPU.

            | clients | metric | added p50 | added p90 | added p99 | direct p50 | agentd p50 | requests/round | failures |
            |---:|---|---:|---:|---:|---:|---:|---:|---:|

            """
        for (level, rounds) in results.levels {
            let requests = level.concurrency * level.requestsPerClient
            let failures = rounds.reduce(0) { $0 + $1.direct.failures + $1.agentd.failures }
            for (name, metric) in [("first text", { (s: Sample) in s.firstText }), ("done", { (s: Sample) in s.done })]
            {
                let cells = Self.percentiles.map { added(rounds, $0.1, metric).formatted(3) }
                text += "| \(level.label) | \(name) | \(cells.joined(separator: " | ")) | "
                text +=
                    "\(absolute(rounds, 0.5, \.direct, metric).formatted(3)) | \(absolute(rounds, 0.5, \.agentd, metric).formatted(3)) | "
                text += "\(requests) | \(failures) |\n"
            }
        }
        return text
    }

    private var throughput: String {
        var text = """
            ## Throughput, CPU and the load generator's ceiling

            Closed loop: each client sends its next request when the previous one is done. CPU is
            user+system time from /proc (agentd, emulator) and getrusage (the generator, 2 threads),
            as a share of one core over the run's wall time.

            | clients | direct req/s | agentd req/s | ratio | agentd CPU µs/request | agentd CPU | emulator CPU (direct / via agentd) | generator CPU (direct / via agentd) |
            |---:|---:|---:|---:|---:|---:|---:|---:|

            """
        // A paced run's rate is set by its pace, not measured.
        for (level, rounds) in results.levels where level.pace == nil {
            let direct = Spread(values: rounds.map { $0.direct.requestsPerSecond })
            let agentd = Spread(values: rounds.map { $0.agentd.requestsPerSecond })
            let ratio = Spread(values: rounds.map { $0.agentd.requestsPerSecond / $0.direct.requestsPerSecond })
            let cpuPerRequest = Spread(values: rounds.map { $0.agentdCPU / Double($0.agentd.samples.count) * 1e6 })
            let agentdShare = Spread(values: rounds.map { $0.agentdCPU / $0.agentd.seconds * 100 })
            let emulatorDirect = Spread(values: rounds.map { $0.emulatorCPUDirect / $0.direct.seconds * 100 })
            let emulatorAgentd = Spread(values: rounds.map { $0.emulatorCPUAgentd / $0.agentd.seconds * 100 })
            let generatorDirect = Spread(values: rounds.map { $0.direct.generatorCPU / $0.direct.seconds * 100 })
            let generatorAgentd = Spread(values: rounds.map { $0.agentd.generatorCPU / $0.agentd.seconds * 100 })
            text +=
                "| \(level.concurrency) | \(direct.formatted(0)) | \(agentd.formatted(0)) | \(ratio.formatted(2)) | "
            text += "\(cpuPerRequest.formatted(0)) | \(agentdShare.formatted(0)) % | "
            text += "\(emulatorDirect.formatted(0)) % / \(emulatorAgentd.formatted(0)) % | "
            text += "\(generatorDirect.formatted(0)) % / \(generatorAgentd.formatted(0)) % |\n"
        }
        return text
    }

    private var concurrency: String {
        guard let hold = results.hold else { return "" }
        let perStream = (results.holdRSS - results.holdBaseRSS) / Double(max(hold.held, 1))
        return """
            ## Concurrency and memory

            Streams asking the emulator for `[fault:stall]` (head and first chunk, then silence), \(results.plan.holdPerConnection)
            per agent-socket connection; a stream counts as held once its first `delta` has arrived.
            RSS is VmRSS of /proc/PID/status.

            | | |
            |---|---:|
            | idle RSS (after READY, one agent, no request yet) | \(mib(results.idleRSS)) |
            | streams requested / held / failed | \(hold.requested) / \(hold.held) / \(hold.failed) |
            | errors of the failed ones | \(hold.errors.sorted { $0.key < $1.key }.map { "\($0.key) × \($0.value)" }.joined(separator: ", ")) |
            | time to hold them all (or to give up after 15 s without progress) | \(fixed(hold.secondsToHold, 1)) s |
            | RSS before the streams (after the latency runs) | \(mib(results.holdBaseRSS)) |
            | RSS with the streams held | \(mib(results.holdRSS)) |
            | RSS per stream | \(fixed(perStream / 1024, 1)) KiB |
            | RSS 12 s after the clients closed | \(mib(results.afterHoldRSS)) |
            | emulator's own count while held | `\(results.holdEmulator)` |

            """
    }

    private var startAndReload: String {
        var text = """
            ## Start and reload

            exec → `READY=1` and SIGHUP → `READY=1` on a bench-owned `NOTIFY_SOCKET`, with generated agent
            files (each a normal-mode agent with a system prompt and limits); SIGHUP reloads unchanged files.
            Milliseconds, median (min–max).

            | agents | socket directory on | exec → READY=1 | SIGHUP → READY=1 |
            |---:|---|---:|---:|

            """
        for run in results.startTimes {
            text += "| \(run.count) | \(run.fileSystem) | \(run.start.formatted(1)) | \(run.reload.formatted(1)) |\n"
        }
        return text
    }

    var sessions: String {
        guard let figures = results.sessions else { return "" }
        var text = """
            ## Sessions: time to first text, milliseconds

            One client, one request at a time, the three kinds interleaved; each asks for
            \(results.plan.words) words. The session holds 50 turns (100 messages) throughout: its agent
            keeps at most 100 messages, so each turn appended drops the oldest.

            | request | p50 | p90 | p99 | requests |
            |---|---:|---:|---:|---:|

            """
        for (name, values) in [
            ("stateless, one message", figures.stateless),
            ("stateless, the same 50 turns sent in `messages`", figures.statelessWithHistory),
            ("`session` with a 50-turn history", figures.session),
        ] {
            let cells = Self.percentiles.map { fixed(percentile(values, $0.1) ?? .nan, 3) }
            text += "| \(name) | \(cells.joined(separator: " | ")) | \(values.count) |\n"
        }
        if let added = sessionAdded { text += "\nA session adds \(fixed(added, 3)) ms at p50.\n" }
        return text
    }

    /// The session's p50 time to first text minus the stateless one's.
    private var sessionAdded: Double? {
        guard let figures = results.sessions, let session = percentile(figures.session, 0.5),
            let stateless = percentile(figures.stateless, 0.5)
        else { return nil }
        return session - stateless
    }

    private var targets: String {
        var rows: [(String, String, Bool?)] = []
        func level(_ concurrency: Int) -> [RoundFigures]? {
            results.levels.first { $0.0.concurrency == concurrency && $0.0.pace == nil }?.1
        }
        if let one = level(1) {
            let value = added(one, 0.5, \.firstText).median
            rows.append(("added time to first text, p50, 1 client ≤ 0.5 ms", "\(fixed(value, 3)) ms", value <= 0.5))
        }
        for (level, rounds) in results.levels where level.concurrency == 100 {
            let value = added(rounds, 0.99, \.firstText).median
            rows.append(
                (
                    "added time to first text, p99, 100 clients (\(level.load)) ≤ 2 ms", "\(fixed(value, 3)) ms",
                    value <= 2
                ))
        }
        if let hundred = level(100) {
            let ratio = Spread(values: hundred.map { $0.agentd.requestsPerSecond / $0.direct.requestsPerSecond }).median
            // Three digits: at two, a ratio of 0.895 would read as a missed 0.90.
            rows.append(("throughput ≥ 0.9 of direct (100 clients)", fixed(ratio, 3), ratio >= 0.9))
        }
        if let hold = results.hold {
            let fits = hold.held >= 10_000 && results.holdRSS <= 1_073_741_824
            let note = "\(hold.held) held in \(mib(results.holdRSS))"
            rows.append(("10,000 streams in ≤ 1 GiB", note, hold.requested >= 10_000 ? fits : nil))
        }
        if let value = sessionAdded {
            rows.append(
                ("added time to first text of a 50-turn session, p50 ≤ 0.5 ms", "\(fixed(value, 3)) ms", value <= 0.5))
        }
        rows.append(("idle RSS ≤ 30 MiB", mib(results.idleRSS), results.idleRSS <= 30 * 1_048_576))
        if let thousand = results.startTimes.first(where: { $0.count == 1000 }) {
            let start = thousand.start.median
            let reload = thousand.reload.median
            let place = "(sockets on \(thousand.fileSystem))"
            rows.append(("exec → READY=1 ≤ 300 ms with 1,000 agents \(place)", "\(fixed(start, 1)) ms", start <= 300))
            rows.append(
                ("SIGHUP → READY=1 ≤ 300 ms with 1,000 agents \(place)", "\(fixed(reload, 1)) ms", reload <= 300))
        }
        var text = "## Targets\n\n| target | measured | verdict |\n|---|---:|---|\n"
        for (name, value, met) in rows {
            text += "| \(name) | \(value) | \(met.map { $0 ? "met" : "**missed**" } ?? "not measured (quick run)") |\n"
        }
        return text
    }

    private static let beginMarker = "<!-- bench:begin (written by `make bench`; edit outside these markers) -->"
    private static let endMarker = "<!-- bench:end -->"

    /// Puts `generated` between the markers of the file at `path`, keeping what is written around them.
    static func write(_ generated: String, into path: String) throws {
        let existing = (try? String(contentsOfFile: path, encoding: .utf8)) ?? "# Benchmarks\n\n"
        let block = "\(beginMarker)\n\(generated)\(endMarker)"
        let updated: String
        if let begin = existing.range(of: beginMarker), let end = existing.range(of: endMarker),
            begin.upperBound <= end.lowerBound
        {
            updated = existing.replacingCharacters(in: begin.lowerBound..<end.upperBound, with: block)
        } else {
            updated = existing + "\n" + block + "\n"
        }
        try updated.write(toFile: path, atomically: true, encoding: .utf8)
    }

    private func mib(_ bytes: Double) -> String { "\(fixed(bytes / 1_048_576, 1)) MiB" }
}
