import Basics
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

extension Bench {
    /// What serving metrics costs a request (issue 20): one client's requests through the load
    /// agentd, which has no metrics listener, interleaved with the same requests through a second
    /// agentd whose listener a scraper reads every second (Prometheus scrapes every 15 s by
    /// default). Both record their metrics: recording is always on, and only the listener and
    /// its scrapes can be switched off.
    func measureMetrics(port: Int, daemon: DaemonUnderTest, generator: LoadGenerator) throws -> MetricsFigures {
        guard let metricsPort = Loopback.unusedPort().map(Int.init) else {
            throw BenchError("cannot find a free port")
        }
        let scraped = try startBenchDaemon(
            "metrics", emulatorPort: port, config: "metrics: {listen: \"127.0.0.1:\(metricsPort)\"}\n")
        defer { scraped.child.stop() }
        let scraper = Scraper(port: metricsPort)
        scraper.start()
        defer { scraper.stop() }
        let off = Target.agentd(socketPath: daemon.socketPath("bench"))
        let on = Target.agentd(socketPath: scraped.socketPath("bench"))
        let reply = ReplyShape(words: plan.words)
        for target in [off, on] { _ = try generator.run(target, concurrency: 1, requestsPerClient: 10, reply: reply) }
        var figures = MetricsFigures()
        for round in 0..<plan.rounds {
            for withMetrics in round % 2 == 0 ? [false, true] : [true, false] {
                let process = withMetrics ? scraped.child : daemon.child
                let before = process.cpuSeconds
                let result = try generator.run(
                    withMetrics ? on : off, concurrency: 1, requestsPerClient: plan.metricsRequests, reply: reply)
                let cpu = (process.cpuSeconds - before) / Double(max(result.samples.count, 1))
                if withMetrics {
                    figures.on.append(result)
                    figures.cpuOn.append(cpu)
                } else {
                    figures.off.append(result)
                    figures.cpuOff.append(cpu)
                }
            }
        }
        (figures.scrapes, figures.failedScrapes) = scraper.counts
        progress("metrics: \(figures.scrapes) scrapes, \(figures.failedScrapes) failed")
        return figures
    }
}

/// Reads `GET /metrics` once a second on its own thread, as a Prometheus would.
private final class Scraper: @unchecked Sendable {
    private let port: Int
    private let lock = NSLock()
    private var running = true
    private var scrapes = 0
    private var failed = 0
    private var thread: Thread?

    init(port: Int) { self.port = port }

    func start() {
        let thread = Thread { [self] in
            while lock.withLock({ running }) {
                let response =
                    Loopback.get(port: port, path: "/metrics").map { String(decoding: $0, as: UTF8.self) } ?? ""
                let ok = response.hasPrefix("HTTP/1.1 200") && response.contains("agentd_requests_total")
                lock.withLock { if ok { scrapes += 1 } else { failed += 1 } }
                usleep(1_000_000)
            }
        }
        self.thread = thread
        thread.start()
    }

    func stop() { lock.withLock { running = false } }

    var counts: (scrapes: Int, failed: Int) { lock.withLock { (scrapes, failed) } }
}
