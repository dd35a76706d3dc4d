import Testing

@testable import MCPServers

/// Every transition of a supervised server's state (STYLE habit 10).
@Suite struct MCPServerLifecycleTests {
    @Test func startsInStartingAndSpawningRecordsThePid() {
        var lifecycle = MCPServerLifecycle()
        #expect(lifecycle.state == .starting)
        #expect(lifecycle.handle(.spawned(pid: 42)) == nil)
        #expect(lifecycle.state == .starting && lifecycle.pid == 42)
    }

    @Test func aHandshakeMakesItReady() {
        var lifecycle = MCPServerLifecycle()
        _ = lifecycle.handle(.spawned(pid: 42))
        #expect(lifecycle.handle(.handshakeSucceeded) == nil)
        #expect(lifecycle.state == .ready)
    }

    @Test func aFailedHandshakeIsFailedWithItsReasonAndTheExitSchedulesARestart() {
        var lifecycle = MCPServerLifecycle()
        _ = lifecycle.handle(.spawned(pid: 42))
        #expect(lifecycle.handle(.handshakeFailed(reason: "no reply to initialize")) == nil)
        #expect(lifecycle.state == .failed(reason: "no reply to initialize"))
        #expect(lifecycle.handle(.exited(reason: "killed by signal 15", uptime: .seconds(1))) == .seconds(1))
        #expect(lifecycle.state == .failed(reason: "no reply to initialize"), "the handshake's reason stays")
        #expect(lifecycle.pid == nil)
    }

    @Test func exitsBackOffFromOneSecondDoublingToSixty() {
        var lifecycle = MCPServerLifecycle()
        var delays: [Duration] = []
        for _ in 0..<8 {
            _ = lifecycle.handle(.spawned(pid: 1))
            _ = lifecycle.handle(.handshakeSucceeded)
            delays.append(lifecycle.handle(.exited(reason: "exit status 1", uptime: .seconds(2)))!)
            _ = lifecycle.handle(.restarting)
        }
        #expect(delays == [1, 2, 4, 8, 16, 32, 60, 60].map { Duration.seconds($0) })
        #expect(lifecycle.restarts == 8)
        #expect(lifecycle.state == .starting)
    }

    @Test func aServerThatRanLongerThanTheLongestBackoffStartsTheBackoffOver() {
        var lifecycle = MCPServerLifecycle()
        for _ in 0..<4 { _ = lifecycle.handle(.exited(reason: "exit status 1", uptime: .seconds(1))) }
        #expect(lifecycle.handle(.exited(reason: "exit status 1", uptime: .seconds(120))) == .seconds(1))
    }

    @Test func aSpawnFailureIsFailedAndRetried() {
        var lifecycle = MCPServerLifecycle()
        #expect(lifecycle.handle(.spawnFailed(reason: "no such file")) == .seconds(1))
        #expect(lifecycle.state == .failed(reason: "no such file"))
    }

    @Test func anExitOfAReadyServerIsFailedWithTheExitStatus() {
        var lifecycle = MCPServerLifecycle()
        _ = lifecycle.handle(.spawned(pid: 7))
        _ = lifecycle.handle(.handshakeSucceeded)
        _ = lifecycle.handle(.exited(reason: "exit status 3", uptime: .seconds(5)))
        #expect(lifecycle.state == .failed(reason: "exit status 3"))
    }

    @Test func stoppedIsFinal() {
        var lifecycle = MCPServerLifecycle()
        _ = lifecycle.handle(.spawned(pid: 7))
        #expect(lifecycle.handle(.stopRequested) == nil)
        #expect(lifecycle.handle(.exited(reason: "exit status 0", uptime: .seconds(1))) == nil, "no restart")
        _ = lifecycle.handle(.handshakeSucceeded)
        #expect(lifecycle.state == .stopped)
        #expect(lifecycle.pid == nil)
    }

    @Test func statesAreListedAsStatusNamesThem() {
        #expect(
            [MCPServerLifecycle.State.starting, .ready, .failed(reason: "x"), .stopped].map(\.listed) == [
                "starting", "ready", "failed", "stopped",
            ])
    }
}
