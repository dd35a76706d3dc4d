import Foundation
import Glibc
import JSON
import TestSupport
import Testing

/// CONTRACT §6 end to end: readiness, reload, shutdown and exit codes, observed through a
/// test-owned NOTIFY_SOCKET.
@Suite(.serialized, .blocksItsThread) struct DaemonLifecycleTests {
    @Test func reloadAddsChangesBreaksAndRemovesAtOnce() throws {
        let harness = try DaemonHarness(agents: [
            "keep.yaml": Agents.chat, "change.yaml": Agents.chat, "break.yaml": Agents.chat, "drop.yaml": Agents.chat,
        ])
        try harness.start()
        var keepBefore = stat()
        stat(harness.socketPath("keep"), &keepBefore)
        let held = try harness.connect("drop")
        // A round trip makes the connection agentd's: one still in the listen backlog when the
        // reload closes the listener is reset with it, as "removed agents stop accepting" says.
        #expect(held.request(["id": "d0", "input": "before"]).last?["type"] == "done")

        harness.directory.write("agents.d/new.yaml", Agents.chat)
        harness.directory.write(
            "agents.d/change.yaml", Agents.chat.replacingOccurrences(of: "temperature: 0.2", with: "temperature: 0.9"))
        harness.directory.write("agents.d/break.yaml", Agents.chat + "\ntemprature: 0.5\n")
        harness.directory.remove("agents.d/drop.yaml")

        let ready = try harness.reload()
        #expect(ready.contains("STATUS=Reloaded"))
        let reply = try harness.control(["id": 1, "command": "reload"])["reload"]
        #expect(reply?["unchanged"] == ["change", "keep", "new"])
        #expect(reply?["errors"]?.arrayValue?.count == 1)

        let list = try harness.control(["id": 2, "command": "list"])["agents"]?.arrayValue ?? []
        let states = Dictionary(
            uniqueKeysWithValues: list.map { ($0["name"]!.stringValue!, $0["state"]!.stringValue!) })
        #expect(states == ["keep": "ok", "change": "ok", "break": "stale", "new": "ok"])

        // The broken file keeps its previous definition in service.
        #expect(try harness.connect("break").request(["id": "b", "input": "still"]).last?["type"] == "done")
        #expect(try harness.connect("new").request(["id": "n", "input": "hi"]).last?["type"] == "done")
        // The removed agent's socket file is gone; its open connection is told the agent went.
        #expect(access(harness.socketPath("drop"), F_OK) != 0)
        #expect(held.request(["id": "d", "input": "anyone?"]).last?["error"]?["code"] == "unknown_agent")
        // Unchanged agents' sockets are untouched.
        var keepAfter = stat()
        stat(harness.socketPath("keep"), &keepAfter)
        #expect(keepAfter.st_ino == keepBefore.st_ino)

        let status = try harness.control(["id": 3, "command": "status"])["status"]
        let error = try #require(status?["last_reload"]?["errors"]?.arrayValue?.first)
        #expect(error["file"]?.stringValue?.hasSuffix("break.yaml") == true)
        #expect(error["message"]?.stringValue?.contains("temperature") == true)
        #expect(harness.stop() == 0)
    }

    /// A connection made as a reload removes its agent is told `unknown_agent` or closed (the
    /// listener stops accepting); either way the daemon lives on and nothing is left hanging.
    /// NIO drops a connection it accepted as its listener closed, which used to make agentd trap.
    @Test func connectsRacingTheRemovalOfTheirAgentAreAnsweredOrClosed() throws {
        let harness = try DaemonHarness(agents: ["keep.yaml": Agents.chat])
        try harness.start()
        for round in 0..<100 {
            harness.directory.write("agents.d/drop.yaml", Agents.chat)
            _ = try harness.reload()
            let client = try harness.connect("drop")
            harness.directory.remove("agents.d/drop.yaml")
            _ = try harness.reload()
            client.send(["id": "r", "input": "x"])
            if let event = client.next(within: 5) {
                #expect(event["error"]?["code"] == "unknown_agent", "round \(round): \(event.jsonText)")
            } else {
                #expect(client.isClosedByPeer(within: 1), "round \(round): neither answered nor closed")
            }
        }
        #expect(try harness.control(["id": 1, "command": "status"])["status"] != nil)
        #expect(harness.stop() == 0)
    }

    @Test func aSocketChangeThatCannotBindKeepsTheAgentOnItsOldSocket() throws {
        let harness = try DaemonHarness(agents: ["a.yaml": Agents.chat])
        try harness.start()
        // Valid as a file, but nothing can be bound there.
        let unbindable = "\(harness.directory.path)/no-such-directory/a.sock"
        harness.directory.write(
            "agents.d/a.yaml",
            Agents.chat.replacingOccurrences(
                of: #"socket: {mode: "0666"}"#, with: #"socket: {mode: "0666", path: "\#(unbindable)"}"#))
        let report = try harness.control(["id": 1, "command": "reload"])["reload"]
        let error = report?["errors"]?.arrayValue?.first?["message"]?.stringValue ?? ""
        #expect(error.contains("no-such-directory"), "\(report?.jsonText ?? "")")
        #expect(report?["removed"] == [])
        let agent = try harness.control(["id": 2, "command": "list"])["agents"]?.arrayValue?.first
        #expect(agent?["state"] == "stale")
        #expect(try harness.connect("a").request(["id": 3, "input": "still here"]).last?["type"] == "done")
    }

    @Test func anIdCanBeReusedAsSoonAsItsTerminalEventArrives() throws {
        let harness = try DaemonHarness(agents: ["a.yaml": Agents.chat])
        try harness.start()
        let client = try harness.connect("a")
        for _ in 0..<50 {
            #expect(client.request(["id": "same", "input": "again"]).last?["type"] == "done")
        }
    }

    @Test func reloadReportsFromTheControlSocket() throws {
        let harness = try DaemonHarness(agents: ["a.yaml": Agents.chat])
        try harness.start()
        harness.directory.write("agents.d/b.yaml", Agents.chat)
        let report = try harness.control(["id": 1, "command": "reload"])["reload"]
        #expect(report?["added"] == ["b"])
        #expect(report?["unchanged"] == ["a"])
        #expect(report?["errors"] == [])
    }

    @Test func streamsSurviveTwentyReloads() throws {
        let harness = try DaemonHarness(agents: ["a.yaml": Agents.chat, "b.yaml": Agents.chat])
        try harness.start()
        let clients = try (0..<10).map { index in try harness.connect(index % 2 == 0 ? "a" : "b") }
        for (index, client) in clients.enumerated() {
            for request in 0..<10 {
                client.send(["id": .int(Int64(index * 100 + request)), "input": "[words:10] [fault:slow]"])
            }
        }
        for round in 0..<20 {
            harness.directory.write(
                "agents.d/a.yaml",
                Agents.chat.replacingOccurrences(of: "temperature: 0.2", with: "temperature: 0.\(round % 9)"))
            _ = try harness.reload()
        }
        var done = 0
        for client in clients {
            var terminal = 0
            while terminal < 10, let event = client.next(within: 30) {
                if event["type"] == "done" { done += 1 }
                if event["type"] == "done" || event["type"] == "error" { terminal += 1 }
            }
        }
        #expect(done == 100)
    }

    @Test func sigtermDrainsInFlightRequestsThenRemovesSocketsAndExitsZero() throws {
        let harness = try DaemonHarness(agents: ["a.yaml": Agents.chat])
        try harness.start()
        let client = try harness.connect("a")
        client.send(["id": "slow", "input": "[words:15] [fault:slow]"])
        #expect(client.next()?["type"] == "start")
        harness.daemon?.signal(SIGTERM)
        #expect(harness.notify.wait(for: "STOPPING=1") != nil)
        #expect(client.events(until: "slow").last?["type"] == "done")
        #expect(harness.daemon?.waitForExit(within: 20) == 0)
        #expect(access(harness.socketPath("a"), F_OK) != 0)
        #expect(access(harness.controlPath, F_OK) != 0)
    }

    @Test func requestsBeyondShutdownGraceEndWithShuttingDown() throws {
        let harness = try DaemonHarness(agents: ["a.yaml": Agents.chat], config: "shutdown_grace: 300ms\n")
        try harness.start()
        let client = try harness.connect("a")
        client.send(["id": "stuck", "input": "[fault:stall]"])
        _ = client.next()
        harness.daemon?.signal(SIGTERM)
        let last = client.events(until: "stuck").last
        #expect(last?["error"]?["code"] == "shutting_down")
        #expect(harness.daemon?.waitForExit(within: 20) == 0)
    }

    @Test func invalidDaemonConfigExits78() throws {
        let harness = try DaemonHarness(agents: ["a.yaml": Agents.chat], config: "max_connections: lots\n")
        let child = try harness.start(waitForReady: false)
        #expect(child.waitForExit() == 78)
        #expect(child.stderr.contains("max_connections"))
    }

    @Test func invalidAgentFilesAreReportedAndSkipped() throws {
        let harness = try DaemonHarness(agents: ["good.yaml": Agents.chat, "bad.yaml": "model: [1\n"])
        try harness.start()
        #expect(access(harness.socketPath("good"), F_OK) == 0)
        #expect(access(harness.socketPath("bad"), F_OK) != 0)
        #expect(harness.daemon?.stderr.contains("bad.yaml:") == true)
    }

    @Test func staleSocketsAreReplacedAndLiveOnesRefused() throws {
        let harness = try DaemonHarness(agents: ["a.yaml": Agents.chat])
        // A socket file nobody listens on, as a crash leaves behind.
        try FileManager.default.createDirectory(
            atPath: "\(harness.socketDir)/agents", withIntermediateDirectories: true)
        try #require(makeStaleSocket(at: harness.socketPath("a")))
        try harness.start()
        #expect(try harness.connect("a").request(["id": 1, "input": "x"]).last?["type"] == "done")

        // A second agentd on the same socket directory must not steal live sockets.
        let second = try ChildProcess(
            "\(productsDirectory)/agentd",
            ["--config", "/dev/null", "--agents-dir", harness.agentsDir, "--socket-dir", harness.socketDir],
            environment: ["MISTRAL_API_KEY": Emulator.apiKey], logDirectory: harness.directory.path)
        #expect(second.waitForExit() == 69)
        #expect(second.stderr.contains("another process"))
        #expect(try harness.connect("a").request(["id": 2, "input": "x"]).last?["type"] == "done")
    }

    @Test func hundredSighupsInASecondCoalesceAndEndReady() throws {
        let harness = try DaemonHarness(agents: ["a.yaml": Agents.chat])
        try harness.start()
        for _ in 0..<100 {
            harness.daemon?.signal(SIGHUP)
            usleep(10_000)
        }
        #expect(harness.notify.wait(for: "RELOADING=1") != nil)
        #expect(try harness.connect("a").request(["id": 1, "input": "x"]).last?["type"] == "done")
        let reloading = harness.notify.messages.filter { $0.contains("RELOADING=1") }
        #expect(reloading.first?.contains("MONOTONIC_USEC=") == true)
        #expect(harness.stop() == 0, "stderr: \(harness.daemon?.stderr.suffix(2000) ?? "")")
    }

    @Test func watchdogPingsWhenAsked() throws {
        let harness = try DaemonHarness(agents: ["a.yaml": Agents.chat])
        try harness.start(environment: ["WATCHDOG_USEC": "200000"])
        #expect(harness.notify.wait(for: "WATCHDOG=1", within: 2) != nil)
    }

    @Test func connectionsBeyondMaxConnectionsAreRefusedClearly() throws {
        let harness = try DaemonHarness(agents: ["a.yaml": Agents.chat], config: "max_connections: 2\n")
        try harness.start()
        let first = try harness.connect("a")
        let second = try harness.connect("a")
        _ = first.request(["id": 1, "input": "x"])
        _ = second.request(["id": 1, "input": "x"])
        let third = try harness.connect("a")
        #expect(third.next()?["error"]?["code"] == "overloaded")
        #expect(third.isClosedByPeer())
    }

    @Test func aBurstOfConnectsWaitsInTheBacklogInsteadOfFailing() throws {
        let harness = try DaemonHarness(agents: ["a.yaml": Agents.chat])
        let daemon = try harness.start()
        // Stopped, agentd accepts nothing: every connect below must find room in the backlog.
        // NIO listens again with a backlog of 128 when it adopts a bound socket, so without the
        // daemon raising it back the 129th connect failed with EAGAIN.
        // The kernel caps any backlog at net.core.somaxconn (4096 by default since Linux 5.4).
        let somaxconn =
            (try? String(contentsOfFile: "/proc/sys/net/core/somaxconn", encoding: .utf8))
            .flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 4096
        daemon.signal(SIGSTOP)
        var descriptors: [Int32] = []
        var failures: [Int32: Int] = [:]
        for _ in 0..<min(600, somaxconn) {
            let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            if withUnixAddress(harness.socketPath("a"), { connect(descriptor, $0, $1) }) == 0 {
                descriptors.append(descriptor)
            } else {
                failures[errno, default: 0] += 1
                close(descriptor)
            }
        }
        daemon.signal(SIGCONT)
        for descriptor in descriptors { close(descriptor) }
        #expect(failures.isEmpty, "connect errors by errno: \(failures)")
        let client = try harness.connect("a")
        #expect(client.request(["id": 1, "input": "still serving"]).last?["type"] == "done")
    }
}
