import Testing

@testable import Sessions

/// The versions a cache of decoded histories relies on: every change to a session gives it a
/// new version or none, and only changes do, on both backends.
@Suite struct SessionVersionTests {
    @Test(arguments: Backend.allCases)
    func anAppendMakesANewVersionThatReadsReturnUntilTheNextChange(_ backend: Backend) async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try makeStore(backend, in: directory)
        #expect(store.version(of: key("a"), now: t0) == nil)
        #expect(try await store.history(key("a"), now: t0).version == nil)

        let first = try await store.append(key("a"), turn: turn(1, messages: 2), limits: roomy, now: t0)
        #expect(first.previous == nil)
        #expect(store.version(of: key("a"), now: t0) == first.version)
        let read = try await store.history(key("a"), now: t0)
        #expect(read.version == first.version)
        #expect(read.turns == [turn(1, messages: 2)])
        // Reading and touching change no content, so no version.
        try await store.touch(key("a"), now: t0)
        #expect(store.version(of: key("a"), now: t0) == first.version)

        let second = try await store.append(key("a"), turn: turn(2, messages: 1), limits: roomy, now: t0)
        #expect(second.previous == first.version)
        #expect(second.version != first.version)
        #expect(try await store.history(key("a"), now: t0).turns == [turn(1, messages: 2), turn(2, messages: 1)])
        await store.close()
        #expect(store.version(of: key("a"), now: t0) == nil)
    }

    @Test(arguments: Backend.allCases)
    func anAppendReportsTheTurnsItsLimitsDropped(_ backend: Backend) async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try makeStore(backend, in: directory)
        var limits = roomy
        limits.maxMessages = 3
        try await store.append(key("a"), turn: turn(1, messages: 2), limits: limits, now: t0)
        #expect(try await store.append(key("a"), turn: turn(2, messages: 1), limits: limits, now: t0).droppedTurns == 0)
        #expect(try await store.append(key("a"), turn: turn(3, messages: 2), limits: limits, now: t0).droppedTurns == 1)
        #expect(try await store.history(key("a"), now: t0).turns == [turn(2, messages: 1), turn(3, messages: 2)])
        await store.close()
    }

    @Test(arguments: Backend.allCases)
    func forgetExpiryAndEvictionLeaveNoVersion(_ backend: Backend) async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try makeStore(backend, in: directory)
        var limits = roomy
        limits.ttl = .seconds(10)
        try await store.append(key("forgotten"), turn: turn(1, messages: 1), limits: limits, now: t0)
        _ = try await store.forget(key("forgotten"))
        #expect(store.version(of: key("forgotten"), now: t0) == nil)

        // Expired: no version at once, and after the sweep none at any time.
        try await store.append(key("idle"), turn: turn(1, messages: 1), limits: limits, now: t0)
        #expect(store.version(of: key("idle"), now: t0 + .seconds(10)) == nil)
        #expect(try await store.sweepExpired(now: t0 + .seconds(10)) == 1)
        #expect(store.version(of: key("idle"), now: t0) == nil)
        // A touch pushes the expiry back as a read does.
        try await store.append(key("kept"), turn: turn(1, messages: 1), limits: limits, now: t0)
        try await store.touch(key("kept"), now: t0 + .seconds(5))
        #expect(store.version(of: key("kept"), now: t0 + .seconds(12)) != nil)
        // An expired session's next append starts it again.
        let restarted = try await store.append(
            key("kept"), turn: turn(2, messages: 1), limits: limits, now: t0 + .seconds(20))
        #expect(restarted.previous == nil)

        limits.maxSessions = 1
        try await store.append(key("other"), turn: turn(1, messages: 1), limits: limits, now: t0 + .seconds(21))
        #expect(store.version(of: key("kept"), now: t0 + .seconds(21)) == nil)
        #expect(store.version(of: key("other"), now: t0 + .seconds(21)) != nil)
        await store.close()
    }

    @Test func aReopenedDatabaseKnowsNoVersionsUntilRead() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let first = SessionStore(stateDirectory: directory.path)
        try await first.append(key("a"), turn: turn(1, messages: 1), limits: roomy, now: t0)
        await first.close()
        let second = SessionStore(stateDirectory: directory.path)
        #expect(second.version(of: key("a"), now: t0) == nil)
        let read = try await second.history(key("a"), now: t0)
        #expect(read.turns == [turn(1, messages: 1)])
        #expect(read.version != nil)
        // A continued session this store never read follows a version it never gave out.
        let third = SessionStore(stateDirectory: directory.path)
        let continued = try await third.append(key("a"), turn: turn(2, messages: 1), limits: roomy, now: t0)
        #expect(continued.previous != nil)
        #expect(continued.previous != continued.version)
        #expect(third.version(of: key("a"), now: t0) == continued.version)
        await second.close()
        await third.close()
    }
}
