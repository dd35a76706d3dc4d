import Foundation
import Glibc
import JSON
import TestSupport
import Testing

/// Issue 7, reload under load: streams across several agents while reloads add, change and
/// remove agents. Every request gets exactly one terminal event: `done`, or `unknown_agent`
/// for a line sent on a connection whose agent a reload removed. 100 streams through 10
/// reloads always; `AGENTD_STRESS=1` (`make stress`) runs 1,000 streams through 100 reloads.
@Suite(.serialized, .blocksItsThread) struct ReliabilityStressTests {
    struct Scale {
        var connections: Int
        var requestsPerConnection: Int
        var reloads: Int
    }

    static let scale =
        ProcessInfo.processInfo.environment["AGENTD_STRESS"] == "1"
        ? Scale(connections: 100, requestsPerConnection: 10, reloads: 100)
        : Scale(connections: 20, requestsPerConnection: 5, reloads: 10)

    static func agent(temperature: Int) -> String {
        """
        model: mistral-small-latest
        temperature: 0.\(temperature % 10)
        limits: {max_concurrent: 256, queue: 2048, timeout: 60s, first_byte_timeout: 30s, idle_timeout: 30s}
        socket: {mode: "0666"}
        """
    }

    @Test func everyStreamEndsExactlyOnceThroughReloadsThatAddChangeAndRemoveAgents() throws {
        let scale = Self.scale
        // Stable agents change at every reload; doomed ones are removed one by one while
        // their connections are still open; each reload also adds a new agent.
        let stable = ["s0", "s1", "s2"]
        let doomed = (0..<5).map { "d\($0)" }
        var files: [String: String] = [:]
        for name in stable + doomed { files["\(name).yaml"] = Self.agent(temperature: 1) }
        let harness = try DaemonHarness(agents: files, config: "max_connections: 1024\n")
        try harness.start()

        let targets = stable + doomed
        let clients = try (0..<scale.connections).map { try harness.connect(targets[$0 % targets.count]) }
        var peakStreams = 0
        let reloadsFinished = ReloadsFinished()
        let tallies = Locked<[TerminalTally]>([])
        let reloadInterval: UInt32 = 60_000
        // Each connection spreads its requests over the whole reload period, and each stream
        // (100 ms a word) lasts about that long: at the end nearly all are in flight at once.
        let pacing = UInt32(scale.reloads) * reloadInterval / UInt32(scale.requestsPerConnection)
        let words = max(6, scale.reloads * Int(reloadInterval) / 100_000)

        let group = DispatchGroup()
        for (index, client) in clients.enumerated() {
            group.enter()
            let thread = Thread {
                var tally = TerminalTally()
                for request in 0..<scale.requestsPerConnection {
                    // The last line waits for the last reload: on a removed agent's connection
                    // it must get `unknown_agent`, however slowly the rest went.
                    if request == scale.requestsPerConnection - 1 { reloadsFinished.wait() }
                    client.send([
                        "id": .int(Int64(request)),
                        "input": .string("c\(index) r\(request) [words:\(words)] [fault:slow]"),
                    ])
                    let until = monotonicNow() + Double(pacing) / 1000
                    while monotonicNow() < until,
                        let event = client.next(within: max(0.01, (until - monotonicNow()) / 1000))
                    {
                        tally.record(event)
                    }
                }
                client.tally(count: scale.requestsPerConnection, within: 120, into: &tally)
                tallies.withLock { $0.append(tally) }
                group.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }

        for round in 0..<scale.reloads {
            harness.directory.write("agents.d/\(stable[round % stable.count]).yaml", Self.agent(temperature: round))
            harness.directory.write("agents.d/new\(round).yaml", Self.agent(temperature: round))
            if round > 0, round % max(1, scale.reloads / doomed.count) == 0 {
                harness.directory.remove(
                    "agents.d/\(doomed[(round / max(1, scale.reloads / doomed.count) - 1) % doomed.count]).yaml")
            }
            if round >= 2 { harness.directory.remove("agents.d/new\(round - 2).yaml") }
            _ = try harness.reload()
            peakStreams = max(peakStreams, harness.emulator.activeStreams)
            usleep(reloadInterval)
        }
        reloadsFinished.signal()
        #expect(group.wait(timeout: .now() + 300) == .success)

        let all = tallies.withLock { $0 }
        #expect(all.count == scale.connections)
        var outcomes: [String: Int] = [:]
        for tally in all {
            #expect(tally.isExactlyOnce)
            #expect(tally.terminals.count == scale.requestsPerConnection)
            outcomes.merge(tally.outcomes, uniquingKeysWith: +)
        }
        let total = scale.connections * scale.requestsPerConnection
        #expect(outcomes.values.reduce(0, +) == total)
        #expect(Set(outcomes.keys).isSubset(of: ["done", "unknown_agent"]), "\(outcomes)")
        // At least the last line of every connection to the four removed agents.
        let removedConnections = (0..<scale.connections).filter {
            doomed.prefix(4).contains(targets[$0 % targets.count])
        }.count
        #expect(outcomes["unknown_agent", default: 0] >= removedConnections, "\(outcomes)")
        print(
            "stress: \(total) streams through \(scale.reloads) reloads, at most \(peakStreams) upstream at once: \(outcomes)"
        )

        let list = try harness.control(["id": 1, "command": "list"])["agents"]?.arrayValue ?? []
        #expect(list.allSatisfy { $0["state"] == "ok" })
        #expect(harness.emulator.activeStreams == 0)
        #expect(harness.stop() == 0)
    }
}

/// A gate the client threads wait at until the reload loop is over.
final class ReloadsFinished: @unchecked Sendable {
    private let condition = NSCondition()
    private var finished = false

    func signal() {
        condition.withLock {
            finished = true
            condition.broadcast()
        }
    }

    func wait() {
        condition.withLock {
            while !finished { condition.wait() }
        }
    }
}
