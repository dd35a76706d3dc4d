import Synchronization
import Testing

@testable import AgentDaemon

@Suite struct HeapTrimmerTests {
    private final class Probe: Sendable {
        /// When each trim ran.
        let trims = Mutex<[ContinuousClock.Instant]>([])
        let idle = Mutex(true)

        var count: Int { trims.withLock { $0.count } }

        /// Waits until `count` trims have happened. Generously: the trimmer's task shares Swift's
        /// pool with the end-to-end tests, which block its threads, and under TSan everything is
        /// slower (a 10 s bound was missed there).
        func waitFor(_ count: Int) async throws {
            let deadline = ContinuousClock.now + .seconds(60)
            while self.count < count, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        }
    }

    private func trimmer(_ probe: Probe, interval: Duration = .seconds(30)) -> HeapTrimmer {
        HeapTrimmer(delay: .milliseconds(20), minimumInterval: interval) {
            probe.trims.withLock { $0.append(.now) }
        }
    }

    @Test func trimsOnceAfterTheDelayHoweverOftenTheDaemonGoesIdle() async throws {
        let probe = Probe()
        let trimmer = trimmer(probe)
        for _ in 0..<5 { trimmer.schedule { probe.idle.withLock { $0 } } }
        try await probe.waitFor(1)
        try await Task.sleep(for: .milliseconds(100))
        #expect(probe.count == 1)
    }

    @Test func anIdlePeriodThatLastsIsTrimmedOnceMoreAfterTheInterval() async throws {
        let probe = Probe()
        let trimmer = trimmer(probe, interval: .milliseconds(200))
        trimmer.schedule { probe.idle.withLock { $0 } }
        try await probe.waitFor(2)
        // What a burst frees after its last request has ended goes back too; then no timer runs.
        try await Task.sleep(for: .milliseconds(700))
        let trims = probe.trims.withLock { $0 }
        try #require(trims.count == 2)
        #expect(trims[1] - trims[0] >= .milliseconds(160))
    }

    @Test func aRequestArrivingBeforeTheSecondTrimCallsItOff() async throws {
        let probe = Probe()
        // A request arrives as the first trim runs.
        let trimmer = HeapTrimmer(delay: .milliseconds(20), minimumInterval: .milliseconds(200)) {
            probe.trims.withLock { $0.append(.now) }
            probe.idle.withLock { $0 = false }
        }
        trimmer.schedule { probe.idle.withLock { $0 } }
        try await probe.waitFor(1)
        try await Task.sleep(for: .milliseconds(500))
        #expect(probe.count == 1)
        // It ends: the daemon is idle again, and trims anew.
        probe.idle.withLock { $0 = true }
        trimmer.schedule { probe.idle.withLock { $0 } }
        try await probe.waitFor(2)
        #expect(probe.count == 2)
    }

    @Test func aRequestArrivingDuringTheDelayCallsTheTrimOff() async throws {
        let probe = Probe()
        let trimmer = trimmer(probe)
        probe.idle.withLock { $0 = false }
        trimmer.schedule { probe.idle.withLock { $0 } }
        try await Task.sleep(for: .milliseconds(150))
        #expect(probe.count == 0)
        // When that request ends, the daemon is idle again and schedules anew.
        probe.idle.withLock { $0 = true }
        trimmer.schedule { probe.idle.withLock { $0 } }
        try await probe.waitFor(1)
        #expect(probe.count == 1)
    }

    @Test func trimsAreAtLeastTheMinimumIntervalApart() async throws {
        let probe = Probe()
        let trimmer = trimmer(probe, interval: .seconds(1))
        trimmer.schedule { probe.idle.withLock { $0 } }
        try await probe.waitFor(1)
        trimmer.schedule { probe.idle.withLock { $0 } }
        try await probe.waitFor(2)
        // The second idle period is not dropped: it trims once the interval has passed. (The
        // margin covers a thread preempted between deciding to trim and trimming.)
        let trims = probe.trims.withLock { $0 }
        try #require(trims.count == 2)
        #expect(trims[1] - trims[0] >= .milliseconds(800))
    }
}
