import AgentCore
import AgentProtocol
import JSON
import LLM
import Logging
import Sessions
import Synchronization
import Testing

@testable import AgentRunner

/// An LLM that answers every call with the next reply of its list, recording what it was sent.
private final class ReplyingLLM: LLMClient {
    private let replies: Mutex<[Result<Completion, ErrorInfo>]>
    private let received = Mutex<[LLMRequest]>([])

    init(_ replies: [Result<Completion, ErrorInfo>]) { self.replies = Mutex(replies) }

    var requests: [LLMRequest] { received.withLock { $0 } }

    func run(
        _ request: LLMRequest, answered: () async throws -> Void, deliver: ([LLMEvent]) async throws -> Void
    ) async throws {
        received.withLock { $0.append(request) }
        switch replies.withLock({ $0.removeFirst() }) {
        case .success(let completion): try await deliver([.text(completion.text), .done(completion)])
        case .failure(let error): throw error
        }
    }
}

private final class Events: EventSink {
    private let sent = Mutex<[[JSONValue]]>([])
    func send(_ events: [JSONValue]) async throws { sent.withLock { $0.append(events) } }
    var batches: [[JSONValue]] { sent.withLock { $0 } }
    var all: [JSONValue] { batches.flatMap { $0 } }
}

@Suite struct SessionTurnTests {
    private let agent = AgentDefinition(
        name: "support", file: "support.yaml", mode: .normal, upstream: .chatCompletions(model: "mistral-small-latest"),
        system: ["Be brief."], sessions: SessionOverrides(maxMessages: 4))
    private let store = SessionStore(stateDirectory: SessionStore.memoryStateDirectory)
    private let locks = SessionLocks()
    /// One cache for every request of a test, as the daemon has.
    private let cache = SessionHistoryCache()
    private static let noTools = ServerTools(
        defaultWorkingDirectory: "/", logger: Logger(label: "test"), logContent: false)

    private static func reply(_ text: String, calls: [ToolCall] = []) -> Result<Completion, ErrorInfo> {
        .success(
            Completion(
                text: text, toolCalls: calls, finishReason: calls.isEmpty ? "stop" : "tool_calls", usage: Usage(),
                model: "mistral-small-latest"))
    }

    private func service(_ defaults: SessionLimits = .defaults) -> SessionService {
        SessionService(store: store, locks: locks, cache: cache, defaults: { defaults })
    }

    private func send(
        _ messages: [ChatMessage], session: String? = "s1", uid: UInt32 = 1000, defaults: SessionLimits = .defaults,
        on agent: AgentDefinition? = nil, llm: ReplyingLLM
    ) async -> [JSONValue] {
        let runner = RequestRunner(
            client: llm, tools: Self.noTools, logger: Logger(label: "test"), logContent: false,
            sessions: service(defaults))
        let sink = Events()
        _ = await runner.run(
            ChatRequest(id: .string("q"), messages: messages, session: session), on: agent ?? self.agent,
            admission: FreeSlot(),
            handle: RequestHandle(), peer: RequestRunner.Peer(pid: 1, uid: uid, gid: uid), sink: sink,
            beforeTerminal: { _ in })
        return sink.all
    }

    private func stored(uid: UInt32 = 1000) async throws -> [ChatMessage] {
        try await store.read(SessionKey(agent: "support", uid: uid, name: "s1")).map(SessionCodec.decode)
    }

    /// The history the cache would serve for the session now; nil when it holds none valid.
    private func cached(_ name: String = "s1", uid: UInt32 = 1000) -> [ChatMessage]? {
        let key = SessionKey(agent: "support", uid: uid, name: name)
        guard let version = store.version(of: key) else { return nil }
        return cache.history(key, version: version)?.messages
    }

    @Test func theSecondTurnIsSentAfterTheFirstAndDoneEchoesTheSession() async throws {
        let llm = ReplyingLLM([Self.reply("one"), Self.reply("two")])
        let first = await send(
            [ChatMessage(role: .system, content: "Client rules."), ChatMessage(role: .user, content: "hi")], llm: llm)
        #expect(first.last?["type"] == "done")
        #expect(first.last?["session"] == "s1")
        _ = await send([ChatMessage(role: .user, content: "again")], llm: llm)
        #expect(
            llm.requests.last?.messages == [
                ChatMessage(role: .user, content: "hi"), ChatMessage(role: .assistant, content: "one"),
                ChatMessage(role: .user, content: "again"),
            ])
        // The client's system message was sent once and never stored.
        #expect(try await stored().map(\.role) == [.user, .assistant, .user, .assistant])
    }

    @Test func aClientToolTurnIsStoredWithItsCallsSoTheResultContinuesIt() async throws {
        let call = ToolCall(id: "call_1", name: "get_order_status", arguments: ["order_id": "42"])
        let llm = ReplyingLLM([Self.reply("", calls: [call]), Self.reply("It shipped.")])
        _ = await send([ChatMessage(role: .user, content: "where is 42?")], llm: llm)
        let result = ChatMessage(role: .tool, content: "shipped", toolCallID: "call_1", name: "get_order_status")
        let second = await send([result], llm: llm)
        #expect(second.last?["text"] == "It shipped.")
        #expect(
            llm.requests.last?.messages == [
                ChatMessage(role: .user, content: "where is 42?"), ChatMessage(role: .assistant, toolCalls: [call]),
                result,
            ])
    }

    @Test func anErrorLeavesTheSessionAsItWas() async throws {
        let llm = ReplyingLLM([
            Self.reply("one"), .failure(ErrorInfo(code: .upstreamRejected, message: "no", status: 400)),
        ])
        _ = await send([ChatMessage(role: .user, content: "hi")], llm: llm)
        let failed = await send([ChatMessage(role: .user, content: "boom")], llm: llm)
        #expect(failed.last?["type"] == "error")
        #expect(try await stored().count == 2)
        // The lock was given back: the session is usable again.
        #expect(locks.acquire(SessionKey(agent: "support", uid: 1000, name: "s1")) != nil)
    }

    @Test func aSessionInUseIsBusyAndRetryable() async throws {
        let held = try #require(locks.acquire(SessionKey(agent: "support", uid: 1000, name: "s1")))
        let llm = ReplyingLLM([Self.reply("one")])
        let busy = await send([ChatMessage(role: .user, content: "hi")], llm: llm)
        #expect(busy.last?["error"]?["code"] == "session_busy")
        #expect(busy.last?["error"]?["retryable"] == true)
        #expect(llm.requests.isEmpty)
        locks.release(held)
        #expect(await send([ChatMessage(role: .user, content: "hi")], llm: llm).last?["type"] == "done")
    }

    @Test func anotherUIDHasAnotherSession() async throws {
        let llm = ReplyingLLM([Self.reply("one"), Self.reply("two")])
        _ = await send([ChatMessage(role: .user, content: "hi")], llm: llm)
        _ = await send([ChatMessage(role: .user, content: "who?")], uid: 65534, llm: llm)
        #expect(llm.requests.last?.messages == [ChatMessage(role: .user, content: "who?")])
        #expect(try await stored(uid: 65534).count == 2)
    }

    @Test func theAgentsMaxMessagesDropsWholeTurns() async throws {
        let llm = ReplyingLLM([Self.reply("one"), Self.reply("two"), Self.reply("three")])
        for text in ["a", "b", "c"] { _ = await send([ChatMessage(role: .user, content: text)], llm: llm) }
        #expect(try await stored().compactMap(\.content) == ["b", "two", "c", "three"])
    }

    @Test func theTextIsSentBeforeTheTurnIsStoredAndTheDoneAfter() async throws {
        let runner = RequestRunner(
            client: ReplyingLLM([Self.reply("one")]), tools: Self.noTools, logger: Logger(label: "test"),
            logContent: false, sessions: service())
        let sink = Events()
        _ = await runner.run(
            ChatRequest(id: .string("q"), messages: [ChatMessage(role: .user, content: "hi")], session: "s1"),
            on: agent, admission: FreeSlot(), handle: RequestHandle(), peer: nil, sink: sink, beforeTerminal: { _ in })
        // The emulated reply delivers text and done together; the done waits for the disk alone.
        #expect(sink.batches.map { $0.compactMap { $0["type"]?.stringValue } } == [["start", "delta"], ["done"]])
        // Without a peer credential the session is the daemon's own uid's.
        #expect(try await stored(uid: SessionTurn.daemonUID).count == 2)
    }

    @Test func withoutASessionNothingIsStored() async throws {
        let llm = ReplyingLLM([Self.reply("one")])
        let events = await send([ChatMessage(role: .user, content: "hi")], session: nil, llm: llm)
        #expect(events.last?["session"] == nil)
        #expect(try await store.list().isEmpty)
    }

    @Test func aCachedHistoryHoldsTheAppendedTurnAndServesTheNextRequest() async throws {
        let llm = ReplyingLLM([Self.reply("one"), Self.reply("two"), Self.reply("three")])
        _ = await send([ChatMessage(role: .user, content: "hi")], llm: llm)
        #expect(cached() == [ChatMessage(role: .user, content: "hi"), ChatMessage(role: .assistant, content: "one")])
        _ = await send([ChatMessage(role: .user, content: "again")], llm: llm)
        #expect(cached()?.compactMap(\.content) == ["hi", "one", "again", "two"])
        #expect(try await cached() == stored())

        // A hit is what the request sends: a marker planted at the current version comes back.
        let key = SessionKey(agent: "support", uid: 1000, name: "s1")
        let version = try #require(store.version(of: key))
        let marker = ChatMessage(role: .user, content: "from the cache")
        cache.keep(
            SessionHistoryCache.History(messages: [marker], turns: [(1, 1)]), of: key, version: version, in: store)
        _ = await send([ChatMessage(role: .user, content: "third")], llm: llm)
        #expect(llm.requests.last?.messages == [marker, ChatMessage(role: .user, content: "third")])
    }

    @Test func forgetInvalidatesTheCachedHistory() async throws {
        let llm = ReplyingLLM([Self.reply("one"), Self.reply("two")])
        _ = await send([ChatMessage(role: .user, content: "hi")], llm: llm)
        #expect(cached() != nil)
        #expect(try await store.forget(SessionKey(agent: "support", uid: 1000, name: "s1")))
        #expect(cached() == nil)
        // The text left memory with the session, not at the next request.
        #expect(cache.count == 0)
        _ = await send([ChatMessage(role: .user, content: "fresh")], llm: llm)
        #expect(llm.requests.last?.messages == [ChatMessage(role: .user, content: "fresh")])
        #expect(cached()?.compactMap(\.content) == ["fresh", "two"])
    }

    @Test func anExpiredSessionIsNotServedFromTheCache() async throws {
        var shortLived = agent
        shortLived.sessions.ttl = .milliseconds(500)
        let llm = ReplyingLLM([Self.reply("one"), Self.reply("two")])
        _ = await send([ChatMessage(role: .user, content: "hi")], on: shortLived, llm: llm)
        try await Task.sleep(for: .milliseconds(700))
        #expect(cached() == nil)
        _ = await send([ChatMessage(role: .user, content: "later")], on: shortLived, llm: llm)
        #expect(llm.requests.last?.messages == [ChatMessage(role: .user, content: "later")])
    }

    @Test func trimmingIsAppliedToTheCachedHistoryAsToTheStore() async throws {
        let llm = ReplyingLLM([Self.reply("one"), Self.reply("two"), Self.reply("three"), Self.reply("four")])
        for text in ["a", "b", "c"] { _ = await send([ChatMessage(role: .user, content: text)], llm: llm) }
        #expect(cached()?.compactMap(\.content) == ["b", "two", "c", "three"])
        #expect(try await cached() == stored())
        _ = await send([ChatMessage(role: .user, content: "d")], llm: llm)
        #expect(llm.requests.last?.messages.compactMap(\.content) == ["b", "two", "c", "three", "d"])
    }

    @Test func anEvictedSessionIsNotServedFromTheCache() async throws {
        var oneSession = SessionLimits.defaults
        oneSession.maxSessions = 1
        let llm = ReplyingLLM([Self.reply("one"), Self.reply("two"), Self.reply("three")])
        _ = await send([ChatMessage(role: .user, content: "hi")], defaults: oneSession, llm: llm)
        _ = await send([ChatMessage(role: .user, content: "other")], session: "s2", defaults: oneSession, llm: llm)
        #expect(cached() == nil)
        #expect(cached("s2") != nil)
        #expect(cache.count == 1)
        _ = await send([ChatMessage(role: .user, content: "back")], defaults: oneSession, llm: llm)
        #expect(llm.requests.last?.messages == [ChatMessage(role: .user, content: "back")])
    }

    @Test func aFailedRequestLeavesTheCachedHistoryAsItWas() async throws {
        let llm = ReplyingLLM([
            Self.reply("one"), .failure(ErrorInfo(code: .upstreamRejected, message: "no", status: 400)),
            Self.reply("two"),
        ])
        _ = await send([ChatMessage(role: .user, content: "hi")], llm: llm)
        let key = SessionKey(agent: "support", uid: 1000, name: "s1")
        let version = store.version(of: key)
        #expect(await send([ChatMessage(role: .user, content: "boom")], llm: llm).last?["type"] == "error")
        #expect(store.version(of: key) == version)
        #expect(cached()?.compactMap(\.content) == ["hi", "one"])
        _ = await send([ChatMessage(role: .user, content: "next")], llm: llm)
        #expect(llm.requests.last?.messages.compactMap(\.content) == ["hi", "one", "next"])
    }

    @Test func anotherUIDNeverSeesTheCachedHistory() async throws {
        let llm = ReplyingLLM([Self.reply("one"), Self.reply("two")])
        _ = await send([ChatMessage(role: .user, content: "hi")], llm: llm)
        #expect(cached(uid: 65534) == nil)
        _ = await send([ChatMessage(role: .user, content: "who?")], uid: 65534, llm: llm)
        #expect(llm.requests.last?.messages == [ChatMessage(role: .user, content: "who?")])
        #expect(cached(uid: 65534)?.compactMap(\.content) == ["who?", "two"])
        #expect(cached()?.compactMap(\.content) == ["hi", "one"])
    }

    @Test func theCacheKeepsItsBoundsDroppingTheLeastRecentlyUsed() async throws {
        let small = SessionHistoryCache(maxEntries: 2, maxBytes: 100)
        func key(_ name: String) -> SessionKey { SessionKey(agent: "support", uid: 1000, name: name) }
        func history(bytes: Int) -> SessionHistoryCache.History {
            SessionHistoryCache.History(messages: [ChatMessage(role: .user, content: "x")], turns: [(1, bytes)])
        }
        var versions: [String: SessionVersion] = [:]
        for name in ["a", "b", "c", "d", "e"] {
            versions[name] = try await store.append(key(name), turn: [SessionMessage(json: "{}")], limits: .defaults)
                .version
        }
        func keep(_ name: String, bytes: Int) {
            small.keep(history(bytes: bytes), of: key(name), version: versions[name]!, in: store)
        }
        func isCached(_ name: String) -> Bool { small.history(key(name), version: versions[name]!) != nil }
        keep("a", bytes: 10)
        keep("b", bytes: 10)
        _ = isCached("a")
        keep("c", bytes: 10)
        #expect(!isCached("b"))
        #expect(isCached("a"))
        keep("d", bytes: 95)
        #expect(small.count == 1)
        keep("e", bytes: 101)
        #expect(!isCached("e"))
        // A version the store has moved past is not kept: its entry could never be served.
        small.keep(history(bytes: 1), of: key("a"), version: versions["b"]!, in: store)
        #expect(small.history(key("a"), version: versions["b"]!) == nil)
    }

    @Test func theCodecKeepsEveryFieldOfAMessage() throws {
        let messages = [
            ChatMessage(role: .user, content: "hé \"quoted\"\n"),
            ChatMessage(
                role: .user,
                content: .chunks([.text("look"), .imageURL(url: "https://example.com/a.png", detail: "low")])),
            ChatMessage(role: .assistant, toolCalls: [ToolCall(id: "c1", name: "f", arguments: ["a": 1])]),
            ChatMessage(role: .tool, content: "out", toolCallID: "c1", name: "f"),
        ]
        #expect(try messages.map { try SessionCodec.decode(SessionCodec.encode($0)) } == messages)
        // Arguments Mistral gave as JSON text are stored as the object they hold.
        let textual = ChatMessage(
            role: .assistant, toolCalls: [ToolCall(id: "c1", name: "f", arguments: .string(#"{"a":1}"#))])
        #expect(try SessionCodec.decode(SessionCodec.encode(textual)) == messages[2])
        #expect(throws: ErrorInfo.self) { try SessionCodec.decode(SessionMessage(json: "{\"role\":\"robot\"}")) }
    }
}
