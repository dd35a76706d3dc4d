import Testing

@testable import Sessions

@Suite struct SessionLocksTests {
    @Test func aHeldSessionIsBusyUntilReleased() throws {
        let locks = SessionLocks()
        let token = try #require(locks.acquire(key("a")))
        #expect(locks.acquire(key("a")) == nil)
        // Another uid's session of the same name is another lock.
        #expect(locks.acquire(key("a", uid: 1001)) != nil)

        locks.release(token)
        #expect(locks.acquire(key("a")) != nil)
    }

    @Test func aStaleTokenDoesNotReleaseTheNextHolder() throws {
        let locks = SessionLocks()
        let first = try #require(locks.acquire(key("a")))
        locks.release(first)
        let second = try #require(locks.acquire(key("a")))
        locks.release(first)
        #expect(locks.acquire(key("a")) == nil)
        locks.release(second)
        #expect(locks.acquire(key("a")) != nil)
    }

    @Test func concurrentRequestsForOneSessionGetOneLock() async {
        let locks = SessionLocks()
        let winners = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<64 {
                group.addTask { locks.acquire(key("a")) != nil }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(winners == 1)
    }
}
