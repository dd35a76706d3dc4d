import Foundation
import Glibc
import JSON
import TestSupport
import Testing

/// Issue 7, signals arriving at awkward moments: during reloads, during the shutdown drain,
/// in floods while requests stream.
@Suite(.serialized, .blocksItsThread) struct ReliabilitySignalTests {
    @Test func sigtermDuringAReloadStillDrainsAndExitsZero() throws {
        let harness = try DaemonHarness(agents: ["a.yaml": Agents.chat, "b.yaml": Agents.chat])
        try harness.start()
        let client = try harness.connect("a")
        client.send(["id": "slow", "input": "[words:10] [fault:slow]"])
        #expect(client.next()?["type"] == "start")
        // Enough files that the reload takes a moment, then SIGTERM right behind SIGHUP.
        for index in 0..<200 { harness.directory.write("agents.d/extra\(index).yaml", Agents.chat) }
        harness.daemon?.signal(SIGHUP)
        harness.daemon?.signal(SIGTERM)
        #expect(client.events(until: "slow").last?["type"] == "done")
        #expect(harness.daemon?.waitForExit(within: 30) == 0, "stderr: \(harness.daemon?.stderr.suffix(2000) ?? "")")
        #expect(harness.notify.messages.contains { $0.contains("STOPPING=1") })
        #expect(access(harness.socketPath("a"), F_OK) != 0)
        #expect(access(harness.socketPath("extra0"), F_OK) != 0)
        #expect(access(harness.controlPath, F_OK) != 0)
    }

    @Test func sighupsDuringTheShutdownDrainAreIgnored() throws {
        let harness = try DaemonHarness(agents: ["a.yaml": Agents.chat])
        try harness.start()
        let client = try harness.connect("a")
        client.send(["id": "slow", "input": "[words:15] [fault:slow]"])
        #expect(client.next()?["type"] == "start")
        harness.daemon?.signal(SIGTERM)
        #expect(harness.notify.wait(for: "STOPPING=1") != nil)
        harness.directory.write("agents.d/late.yaml", Agents.chat)
        for _ in 0..<20 {
            harness.daemon?.signal(SIGHUP)
            usleep(20_000)
        }
        #expect(client.events(until: "slow").last?["type"] == "done")
        #expect(harness.daemon?.waitForExit(within: 30) == 0, "stderr: \(harness.daemon?.stderr.suffix(2000) ?? "")")
        // No reload started after STOPPING, so the late agent never got a socket.
        let messages = harness.notify.messages
        let stopping = try #require(messages.firstIndex { $0.contains("STOPPING=1") })
        #expect(!messages[stopping...].contains { $0.contains("RELOADING=1") })
        #expect(access(harness.socketPath("late"), F_OK) != 0)
    }

    @Test func aSighupFloodWhileStreamingLosesNoRequest() throws {
        let harness = try DaemonHarness(agents: ["a.yaml": Agents.chat])
        try harness.start()
        let client = try harness.connect("a")
        for index in 0..<30 { client.send(["id": .int(Int64(index)), "input": "[words:8] [fault:slow]"]) }
        for round in 0..<100 {
            if round % 10 == 0 {
                harness.directory.write(
                    "agents.d/a.yaml",
                    Agents.chat.replacingOccurrences(of: "temperature: 0.2", with: "temperature: 0.\(round / 10)"))
            }
            harness.daemon?.signal(SIGHUP)
            usleep(10_000)
        }
        let tally = client.tally(count: 30, within: 60)
        #expect(tally.isExactlyOnce)
        #expect(tally.outcomes == ["done": 30])
        #expect(harness.stop() == 0)
    }

    @Test func twoSigtermsAreOneShutdown() throws {
        let harness = try DaemonHarness(agents: ["a.yaml": Agents.chat])
        try harness.start()
        let client = try harness.connect("a")
        client.send(["id": "slow", "input": "[words:10] [fault:slow]"])
        #expect(client.next()?["type"] == "start")
        harness.daemon?.signal(SIGTERM)
        usleep(100_000)
        harness.daemon?.signal(SIGTERM)
        #expect(client.events(until: "slow").last?["type"] == "done")
        #expect(harness.daemon?.waitForExit(within: 30) == 0)
        #expect(harness.notify.messages.filter { $0.contains("STOPPING=1") }.count == 1)
    }
}
