import Foundation
import Glibc
import JSON
import TestSupport
import Testing

/// Issue 7, leaks: agentd's resident memory over many requests, printed every 10,000
/// requests. A benchmark rather than a timed assertion: it runs only with
/// `AGENTD_LEAK_REQUESTS=N`, e.g. `AGENTD_LEAK_REQUESTS=100000 swift test --filter ReliabilityLeakCheck`, and fails only if
/// memory keeps growing through the second half of the run.
@Suite(.serialized, .blocksItsThread) struct ReliabilityLeakCheck {
    static let requests = Int(ProcessInfo.processInfo.environment["AGENTD_LEAK_REQUESTS"] ?? "") ?? 0

    @Test(.enabled(if: requests > 0)) func residentMemoryStaysFlatOverManyRequests() throws {
        let harness = try DaemonHarness(agents: [
            "a.yaml": ReliabilityStressTests.agent(temperature: 1),
            "b.yaml": ReliabilityStressTests.agent(temperature: 2),
        ])
        try harness.start()
        let pid = try #require(harness.daemon?.pid)
        let connections = 8
        let batch = 10_000 / connections
        var samples: [Int] = []
        var completed = 0
        print("leak-check: requests rss_kib")
        print("leak-check: 0 \(residentKiB(of: pid) ?? -1)")
        while completed < Self.requests {
            // A fresh set of connections per batch: connection setup and teardown are
            // exercised too. Half the requests stream, half cancel or fail upstream.
            let failures = Locked(0)
            onThreads(connections) { index in
                guard let client = try? harness.connect(index % 2 == 0 ? "a" : "b") else {
                    failures.withLock { $0 += batch }
                    return
                }
                var sent = 0
                while sent < batch {
                    let burst = min(50, batch - sent)
                    for offset in 0..<burst {
                        let id = sent + offset
                        let directive = ["", "[words:20]", "[fault:503]", "[fault:400]"][id % 4]
                        let input = "hello \(id) \(directive)"
                        client.send(["id": .int(Int64(id)), "input": .string(input), "stream": .bool(id % 8 != 0)])
                    }
                    let tally = client.tally(count: burst, within: 60)
                    if tally.terminals.count != burst || !tally.isExactlyOnce { failures.withLock { $0 += 1 } }
                    sent += burst
                }
            }
            completed += batch * connections
            let rss = residentKiB(of: pid) ?? -1
            samples.append(rss)
            print("leak-check: \(completed) \(rss)")
            #expect(failures.withLock { $0 } == 0)
        }
        // Allocators keep some high-water memory; a leak shows as growth that does not stop.
        if samples.count >= 4 {
            let half = samples.count / 2
            let growth = samples.last! - samples[half]
            print("leak-check: growth over the second half: \(growth) KiB")
            #expect(growth < 8 * 1024, "RSS kept growing: \(samples)")
        }
        #expect(harness.stop() == 0)
    }
}
