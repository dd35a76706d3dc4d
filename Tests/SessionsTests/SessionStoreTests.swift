import Testing

@testable import Sessions

/// The store's semantics, each test run against the SQLite and the memory backend alike.
@Suite struct SessionStoreTests {
    @Test(arguments: Backend.allCases)
    func appendedTurnsReadBackInOrder(_ backend: Backend) async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try makeStore(backend, in: directory)
        // Opaque bytes: not UTF-8, and an empty message, come back as they went in.
        let binary = SessionMessage([0, 0xff, 0xfe, 10])
        let empty = SessionMessage([])
        try await store.append(key("a"), turn: turn(1, messages: 2), limits: roomy, now: t0)
        try await store.append(key("a"), turn: [binary, empty, .named("t2.2")], limits: roomy, now: t0 + .seconds(1))

        let messages = try await store.read(key("a"), now: t0 + .seconds(2))
        #expect(messages == turn(1, messages: 2) + [binary, empty, .named("t2.2")])
        #expect(try await store.read(key("unknown"), now: t0).isEmpty)
        await store.close()
    }

    @Test(arguments: Backend.allCases)
    func theSameNameFromAnotherUidOrAgentIsAnotherSession(_ backend: Backend) async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try makeStore(backend, in: directory)
        try await store.append(key("chat", uid: 1000), turn: [.named("uid 1000")], limits: roomy, now: t0)
        try await store.append(key("chat", uid: 1001), turn: [.named("uid 1001")], limits: roomy, now: t0)
        try await store.append(key("chat", agent: "other"), turn: [.named("other agent")], limits: roomy, now: t0)

        #expect(try await store.read(key("chat", uid: 1000), now: t0) == [.named("uid 1000")])
        #expect(try await store.read(key("chat", uid: 1001), now: t0) == [.named("uid 1001")])
        #expect(try await store.read(key("chat", agent: "other"), now: t0) == [.named("other agent")])
        await store.close()
    }

    @Test(arguments: Backend.allCases)
    func maxMessagesDropsWholeOldestTurns(_ backend: Backend) async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try makeStore(backend, in: directory)
        var limits = roomy
        limits.maxMessages = 4
        // A user message, an assistant message with tool calls and their result: one turn.
        try await store.append(key("a"), turn: turn(1, messages: 2), limits: limits, now: t0)
        try await store.append(key("a"), turn: turn(2, messages: 2), limits: limits, now: t0)
        #expect(try await store.read(key("a"), now: t0) == turn(1, messages: 2) + turn(2, messages: 2))

        // 7 messages: dropping turn 1 leaves 5, still over 4, so turn 2 goes too. Trimming
        // single messages would have kept t2.1 without its t2.0 (a result without its call).
        try await store.append(key("a"), turn: turn(3, messages: 3), limits: limits, now: t0)
        #expect(try await store.read(key("a"), now: t0) == turn(3, messages: 3))
        #expect(try await store.list(now: t0).map(\.messages) == [3])
        await store.close()
    }

    @Test(arguments: Backend.allCases)
    func maxBytesDropsWholeOldestTurns(_ backend: Backend) async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try makeStore(backend, in: directory)
        let first = [SessionMessage.named("t1.0", padding: 90), .named("t1.1", padding: 90)]
        let second = [SessionMessage.named("t2.0", padding: 90)]
        let third = [SessionMessage.named("t3.0", padding: 90)]
        let size = second[0].content.count
        var limits = roomy
        limits.maxBytes = 3 * size

        try await store.append(key("a"), turn: first, limits: limits, now: t0)
        try await store.append(key("a"), turn: second, limits: limits, now: t0)
        #expect(try await store.read(key("a"), now: t0) == first + second)
        // 4 messages' worth: over by one message, yet the whole first turn goes.
        try await store.append(key("a"), turn: third, limits: limits, now: t0)
        #expect(try await store.read(key("a"), now: t0) == second + third)
        #expect(try await store.list(now: t0).map(\.bytes) == [2 * size])
        await store.close()
    }

    @Test(arguments: Backend.allCases)
    func aTurnOverTheLimitsByItselfIsKeptUntilTheNextAppend(_ backend: Backend) async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try makeStore(backend, in: directory)
        var limits = roomy
        limits.maxMessages = 2
        try await store.append(key("a"), turn: turn(1, messages: 3), limits: limits, now: t0)
        #expect(try await store.read(key("a"), now: t0) == turn(1, messages: 3))
        try await store.append(key("a"), turn: turn(2, messages: 1), limits: limits, now: t0)
        #expect(try await store.read(key("a"), now: t0) == turn(2, messages: 1))
        await store.close()
    }

    @Test(arguments: Backend.allCases)
    func aSessionIdleForItsTtlReadsAsEmptyAndIsNotContinued(_ backend: Backend) async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try makeStore(backend, in: directory)
        var limits = roomy
        limits.ttl = .seconds(60)
        try await store.append(key("a"), turn: turn(1, messages: 1), limits: limits, now: t0)

        // A read is use: it moves the expiry to 60 s after it.
        #expect(try await store.read(key("a"), now: t0 + .seconds(59)) == turn(1, messages: 1))
        #expect(try await store.read(key("a"), now: t0 + .seconds(118)) == turn(1, messages: 1))
        let expired = t0 + .seconds(178)
        #expect(try await store.read(key("a"), now: expired).isEmpty)
        #expect(try await store.list(now: expired).isEmpty)

        // An append after the expiry starts a new conversation instead of continuing the old one.
        try await store.append(key("a"), turn: turn(2, messages: 1), limits: limits, now: expired)
        #expect(try await store.read(key("a"), now: expired) == turn(2, messages: 1))
        await store.close()
    }

    @Test(arguments: Backend.allCases)
    func sweepRemovesSessionsIdlePastTheTtlTheirAppendGave(_ backend: Backend) async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try makeStore(backend, in: directory)
        var short = roomy
        short.ttl = .seconds(10)
        try await store.append(key("short"), turn: turn(1, messages: 1), limits: short, now: t0)
        try await store.append(key("long"), turn: turn(1, messages: 1), limits: roomy, now: t0)

        #expect(try await store.sweepExpired(now: t0 + .seconds(9)) == 0)
        #expect(try await store.sweepExpired(now: t0 + .seconds(10)) == 1)
        #expect(try await store.list(now: t0).map(\.key) == [key("long")])
        // Gone, not only hidden: even a reader whose clock went back sees nothing.
        #expect(try await store.read(key("short"), now: t0).isEmpty)
        #expect(try await store.sweepExpired(now: t0 + .seconds(3600)) == 1)
        await store.close()
    }

    @Test(arguments: Backend.allCases)
    func beyondMaxSessionsTheLeastRecentlyUsedGoes(_ backend: Backend) async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try makeStore(backend, in: directory)
        var limits = roomy
        limits.maxSessions = 2
        try await store.append(key("a"), turn: turn(1, messages: 1), limits: limits, now: t0)
        try await store.append(key("b"), turn: turn(1, messages: 1), limits: limits, now: t0 + .seconds(1))
        // Reading "a" makes "b" the least recently used.
        _ = try await store.read(key("a"), now: t0 + .seconds(2))
        try await store.append(key("c"), turn: turn(1, messages: 1), limits: limits, now: t0 + .seconds(3))

        #expect(try await store.list(now: t0 + .seconds(3)).map(\.key) == [key("a"), key("c")])
        #expect(try await store.read(key("b"), now: t0 + .seconds(3)).isEmpty)
        await store.close()
    }

    @Test(arguments: Backend.allCases)
    func listReportsSizesAndTimesPerAgent(_ backend: Backend) async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try makeStore(backend, in: directory)
        let messages = turn(1, messages: 2)
        let bytes = messages.reduce(0) { $0 + $1.content.count }
        try await store.append(key("b"), turn: messages, limits: roomy, now: t0)
        try await store.append(key("a"), turn: messages, limits: roomy, now: t0 + .seconds(5))
        try await store.append(key("x", agent: "other"), turn: messages, limits: roomy, now: t0)

        let helper = try await store.list(agent: "helper", now: t0 + .seconds(5))
        #expect(
            helper == [
                SessionSummary(
                    key: key("a"), messages: 2, bytes: bytes, updated: t0 + .seconds(5),
                    expires: t0 + .seconds(5) + roomy.ttl),
                SessionSummary(key: key("b"), messages: 2, bytes: bytes, updated: t0, expires: t0 + roomy.ttl),
            ])
        #expect(try await store.list(now: t0).map(\.key) == [key("a"), key("b"), key("x", agent: "other")])
        #expect(try await store.list(agent: "nobody", now: t0).isEmpty)
        await store.close()
    }

    @Test(arguments: Backend.allCases)
    func forgetRemovesOnlyThatSession(_ backend: Backend) async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try makeStore(backend, in: directory)
        try await store.append(key("a"), turn: turn(1, messages: 1), limits: roomy, now: t0)
        try await store.append(key("b"), turn: turn(1, messages: 1), limits: roomy, now: t0)

        #expect(try await store.forget(key("a")))
        #expect(try await store.forget(key("a")) == false)
        #expect(try await store.read(key("a"), now: t0).isEmpty)
        #expect(try await store.read(key("b"), now: t0) == turn(1, messages: 1))
        await store.close()
    }

    @Test(arguments: Backend.allCases)
    func aTtlOfCenturiesSaturatesInsteadOfOverflowing(_ backend: Backend) async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try makeStore(backend, in: directory)
        var limits = roomy
        limits.ttl = .seconds(Int64.max)
        try await store.append(key("a"), turn: turn(1, messages: 1), limits: limits, now: t0)
        #expect(try await store.read(key("a"), now: t0 + .seconds(100 * 365 * 86400)) == turn(1, messages: 1))
        #expect(try await store.list(now: t0).map(\.expires) == [Timestamp(millisecondsSinceEpoch: .max)])
        await store.close()
    }

    /// Callers on many tasks at once: the store's thread runs their calls one at a time, so no
    /// turn is lost or interleaved with another.
    @Test(arguments: Backend.allCases)
    func concurrentAppendsAreSerialised(_ backend: Backend) async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try makeStore(backend, in: directory)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for session in 0..<8 {
                for number in 0..<5 {
                    group.addTask {
                        try await store.append(
                            key("s\(session)"), turn: turn(number, messages: 2), limits: roomy, now: t0)
                    }
                }
            }
            try await group.waitForAll()
        }
        for session in 0..<8 {
            let messages = try await store.read(key("s\(session)"), now: t0)
            #expect(messages.count == 10)
            // Each turn's two messages stay next to each other.
            for pair in stride(from: 0, to: messages.count, by: 2) {
                #expect(messages[pair].text.replacing(".0", with: ".1") == messages[pair + 1].text)
            }
        }
        await store.close()
    }

    @Test(arguments: Backend.allCases)
    func aClosedStoreThrowsInsteadOfCrashing(_ backend: Backend) async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try makeStore(backend, in: directory)
        await store.close()
        let error = await #expect(throws: SessionStoreError.self) {
            try await store.append(key("a"), turn: turn(1, messages: 1), limits: roomy, now: t0)
        }
        #expect(error?.code == .closed)
        #expect(error?.description == "sessions database: append to a session: the session store is closed")
    }
}
