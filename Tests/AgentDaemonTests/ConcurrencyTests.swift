import AgentProtocol
import AgentRunner
import Synchronization
import Testing

@testable import AgentDaemon

@Suite struct ConcurrencyLimiterTests {
    let farDeadline = ContinuousClock.now + .seconds(60)

    @Test func admitsUpToCapacityQueuesThenRefuses() async throws {
        let limiter = ConcurrencyLimiter(capacity: 1, queueLimit: 1)
        let first = try limiter.reserve(agent: "a")
        let second = try limiter.reserve(agent: "a")
        #expect(throws: ErrorInfo.self) { try limiter.reserve(agent: "a") }
        #expect(limiter.running == 1)
        #expect(limiter.waiting == 1)
        let waiter = Task { try await second.waitForSlot(agent: "a", deadline: farDeadline) }
        first.finish()
        try await waiter.value
        #expect(limiter.running == 1)
        second.finish()
        #expect(limiter.running == 0)
    }

    @Test func placesAreServedInReservationOrderWhateverOrderTasksWait() async throws {
        let limiter = ConcurrencyLimiter(capacity: 1, queueLimit: 2)
        let holder = try limiter.reserve(agent: "a")
        let early = try limiter.reserve(agent: "a")
        let late = try limiter.reserve(agent: "a")
        let lateWaiter = Task { try await late.waitForSlot(agent: "a", deadline: farDeadline) }
        try await Task.sleep(for: .milliseconds(20))
        holder.finish()
        // The slot went to `early`, which had not even started waiting.
        try await early.waitForSlot(agent: "a", deadline: farDeadline)
        #expect(limiter.waiting == 1)
        early.finish()
        try await lateWaiter.value
        late.finish()
        #expect(limiter.running == 0)
    }

    @Test func aSlotFreedBeforeTheWaiterArrivesIsNotLost() async throws {
        let limiter = ConcurrencyLimiter(capacity: 1, queueLimit: 1)
        let holder = try limiter.reserve(agent: "a")
        let queued = try limiter.reserve(agent: "a")
        holder.finish()
        try await queued.waitForSlot(agent: "a", deadline: .now + .milliseconds(100))
        #expect(limiter.running == 1)
        queued.finish()
        #expect(limiter.running == 0)
    }

    @Test func cancellingAWaiterFreesItsPlaceInTheQueue() async throws {
        let limiter = ConcurrencyLimiter(capacity: 1, queueLimit: 1)
        let holder = try limiter.reserve(agent: "a")
        let queued = try limiter.reserve(agent: "a")
        let waiter = Task { try await queued.waitForSlot(agent: "a", deadline: farDeadline) }
        try await Task.sleep(for: .milliseconds(20))
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        queued.finish()
        #expect(limiter.waiting == 0)
        #expect(limiter.running == 1)
        holder.finish()
        #expect(limiter.running == 0)
    }

    @Test func aQueuedRequestTimesOutAtItsDeadline() async throws {
        let limiter = ConcurrencyLimiter(capacity: 1, queueLimit: 1)
        let holder = try limiter.reserve(agent: "a")
        let queued = try limiter.reserve(agent: "a")
        await #expect(
            throws: ErrorInfo(
                code: .timeout, message: "request timed out waiting for agent a (max_concurrent)", retryable: true)
        ) {
            try await queued.waitForSlot(agent: "a", deadline: .now + .milliseconds(50))
        }
        #expect(limiter.waiting == 0)
        holder.finish()
        #expect(limiter.running == 0)
    }

    @Test func growingCapacityAdmitsWaiters() async throws {
        let limiter = ConcurrencyLimiter(capacity: 1, queueLimit: 5)
        let holder = try limiter.reserve(agent: "a")
        let queued = try (0..<2).map { _ in try limiter.reserve(agent: "a") }
        let waiters = queued.map { reservation in
            Task { try await reservation.waitForSlot(agent: "a", deadline: farDeadline) }
        }
        limiter.resize(capacity: 3, queueLimit: 5)
        for waiter in waiters { try await waiter.value }
        #expect(limiter.running == 3)
        holder.finish()
        for reservation in queued { reservation.finish() }
        #expect(limiter.running == 0)
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
