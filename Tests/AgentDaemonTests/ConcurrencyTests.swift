import AgentProtocol
import Synchronization
import Testing

@testable import AgentDaemon

@Suite struct ConcurrencyLimiterTests {
    @Test func admitsUpToCapacityQueuesThenRefuses() async throws {
        let limiter = ConcurrencyLimiter(capacity: 1, queueLimit: 1)
        try await limiter.acquire(agent: "a", deadline: .now + .seconds(60))
        let waiter = Task { try await limiter.acquire(agent: "a", deadline: .now + .seconds(60)) }
        while limiter.waiting == 0 { await Task.yield() }
        await #expect(throws: ErrorInfo.self) { try await limiter.acquire(agent: "a", deadline: .now + .seconds(60)) }
        limiter.release()
        try await waiter.value
        #expect(limiter.running == 1)
        limiter.release()
        #expect(limiter.running == 0)
    }

    @Test func cancellingAWaiterFreesItsPlaceInTheQueue() async throws {
        let limiter = ConcurrencyLimiter(capacity: 1, queueLimit: 1)
        try await limiter.acquire(agent: "a", deadline: .now + .seconds(60))
        let waiter = Task { try await limiter.acquire(agent: "a", deadline: .now + .seconds(60)) }
        while limiter.waiting == 0 { await Task.yield() }
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(limiter.waiting == 0)
        #expect(limiter.running == 1)
    }

    @Test func aQueuedRequestTimesOutAtItsDeadline() async throws {
        let limiter = ConcurrencyLimiter(capacity: 1, queueLimit: 1)
        try await limiter.acquire(agent: "a", deadline: .now + .seconds(60))
        await #expect(
            throws: ErrorInfo(
                code: .timeout, message: "request timed out waiting for agent a (max_concurrent)", retryable: true)
        ) {
            try await limiter.acquire(agent: "a", deadline: .now + .milliseconds(50))
        }
        #expect(limiter.waiting == 0)
        #expect(limiter.running == 1)
    }

    @Test func growingCapacityAdmitsWaiters() async throws {
        let limiter = ConcurrencyLimiter(capacity: 1, queueLimit: 5)
        try await limiter.acquire(agent: "a", deadline: .now + .seconds(60))
        let waiters = (0..<2).map { _ in Task { try await limiter.acquire(agent: "a", deadline: .now + .seconds(60)) } }
        while limiter.waiting < 2 { await Task.yield() }
        limiter.resize(capacity: 3, queueLimit: 5)
        for waiter in waiters { try await waiter.value }
        #expect(limiter.running == 3)
    }
}

@Suite struct ReloadCoordinatorTests {
    @Test func reloadsAskedForDuringOneCoalesceIntoTheNext() async {
        let performed = Atomic<Int>(0)
        let coordinator = ReloadCoordinator {
            performed.add(1, ordering: .relaxed)
            try? await Task.sleep(for: .milliseconds(50))
            return ReloadReport(time: 0)
        }
        await withTaskGroup(of: ReloadReport?.self) { group in
            for _ in 0..<100 { group.addTask { await coordinator.reload() } }
            for await report in group { #expect(report != nil) }
        }
        #expect(performed.load(ordering: .relaxed) <= 2)
        #expect(performed.load(ordering: .relaxed) >= 1)
    }

    @Test func stopWaitsForTheRunningReloadAndRefusesLaterOnes() async {
        let coordinator = ReloadCoordinator {
            try? await Task.sleep(for: .milliseconds(50))
            return ReloadReport(time: 0)
        }
        let running = Task { await coordinator.reload() }
        try? await Task.sleep(for: .milliseconds(10))
        await coordinator.stop()
        #expect(await running.value != nil)
        #expect(await coordinator.reload() == nil)
    }
}
