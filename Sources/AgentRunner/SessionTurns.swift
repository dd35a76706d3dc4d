import AgentCore
import AgentProtocol
import JSON
import LLM
import Sessions
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// What the runner needs to serve requests that carry `session` (contract §9): the store, the
/// per-session locks, the daemon's session limits, read at each request so that a reload
/// that changes them applies to the next one, and the cache of decoded histories.
public struct SessionService: Sendable {
    public let store: SessionStore
    public let locks: SessionLocks
    let defaults: @Sendable () -> SessionLimits
    let cache: SessionHistoryCache

    public init(store: SessionStore, locks: SessionLocks, defaults: @escaping @Sendable () -> SessionLimits) {
        self.init(store: store, locks: locks, cache: SessionHistoryCache(), defaults: defaults)
    }

    init(
        store: SessionStore, locks: SessionLocks, cache: SessionHistoryCache,
        defaults: @escaping @Sendable () -> SessionLimits
    ) {
        self.store = store
        self.locks = locks
        self.cache = cache
        self.defaults = defaults
        // A forgotten or evicted session's text leaves memory with it, not at the next LRU turn.
        // Each service registers an observer for good: the daemon makes one per store.
        store.onRemoval { keys in
            for key in keys { cache.remove(key) }
        }
    }
}

/// One request's hold on its session, from the lock to the append.
///
/// `begin` takes the session's lock (or fails with `session_busy`) and reads its history,
/// from the cache when it holds the store's current version; `commit` appends the request's
/// turn and gives the lock back, before the `done` is written, so a client that sends its next turn as soon as it reads `done` finds the session free and
/// complete. `release` gives the lock back without appending (an `error`, a disconnect); it
/// may run more than once. Without `session` every step does nothing.
final class SessionTurn: Sendable {
    /// The session's name, echoed in `done`.
    let name: String?
    private let key: SessionKey?
    private let service: SessionService?
    private let limits: SessionLimits
    /// What the client sent this time, the first part of the turn.
    private let sent: [ChatMessage]
    private let token = Mutex<SessionLocks.Token?>(nil)
    /// The history `begin` found and its version (nil for an empty one), which `commit`
    /// extends into the cache entry of the version its append makes.
    private let base = Mutex<(history: SessionHistoryCache.History, version: SessionVersion?)>((.init(), nil))

    /// `uid` owns the session: the peer's, since the same name from another uid is another
    /// session.
    init(request: ChatRequest, definition: AgentDefinition, uid: UInt32, service: SessionService?) {
        name = request.session
        key = request.session.map { SessionKey(agent: definition.name, uid: uid, name: $0) }
        self.service = service
        limits = request.session == nil ? .defaults : definition.sessions.applied(to: service?.defaults() ?? .defaults)
        // System prompts are the agent's or the client's instructions, not the conversation.
        sent = request.messages.filter { $0.role != .system }
    }

    /// The uid that owns the sessions of a request without a peer credential: the daemon's own.
    static var daemonUID: UInt32 { getuid() }

    /// The stored history, oldest first; empty without a session.
    func begin() async throws(ErrorInfo) -> [ChatMessage] {
        guard let key else { return [] }
        guard let service else {
            throw ErrorInfo(code: .internal, message: "session: this agentd keeps no sessions")
        }
        guard let acquired = service.locks.acquire(key) else {
            throw ErrorInfo(
                code: .sessionBusy, message: "session \"\(key.name)\" is busy with another request", retryable: true)
        }
        token.withLock { $0 = acquired }
        if let version = service.store.version(of: key), let cached = service.cache.history(key, version: version) {
            base.withLock { $0 = (cached, version) }
            // A read counts as use (recency, ttl); the request need not wait for it. Started here,
            // the task's first step is its enqueueing on the store's thread: no pool thread to wake.
            let store = service.store
            Task.immediate { try? await store.touch(key) }
            return cached.messages
        }
        do {
            let stored = try await service.store.history(key)
            var history = SessionHistoryCache.History()
            for turn in stored.turns {
                history.messages += try turn.map { message throws(ErrorInfo) in try SessionCodec.decode(message) }
                history.turns.append((turn.count, turn.storedBytes))
            }
            base.withLock { $0 = (history, stored.version) }
            if let version = stored.version {
                service.cache.keep(history, of: key, version: version, in: service.store)
            }
            return history.messages
        } catch let error as ErrorInfo {
            release()
            throw error
        } catch {
            release()
            throw ErrorInfo(code: .internal, message: "session store: \(error)")
        }
    }

    /// Appends what the client sent and what the request added (the assistant messages, with
    /// their tool calls for the client to answer next time, and the server tools' results),
    /// atomically, then releases the lock. When the append fails the session is as it was and
    /// the request ends in an error instead of `done`.
    func commit(_ added: [ChatMessage]) async throws(ErrorInfo) {
        guard let key, let service else { return }
        defer { release() }
        let turn = (sent + added).map(SessionCodec.encode)
        let appended: SessionAppend
        do {
            appended = try await service.store.append(key, turn: turn, limits: limits)
        } catch {
            throw ErrorInfo(code: .internal, message: "session store: \(error)")
        }
        // What a later read would decode, not the messages as sent: the codec may normalise.
        guard let decoded = try? turn.map({ message throws(ErrorInfo) in try SessionCodec.decode(message) }) else {
            service.cache.remove(key)
            return
        }
        let (history, version) = base.withLock { $0 }
        let before: SessionHistoryCache.History
        switch appended.previous {
        case nil:
            // The append started the session (it had expired or was removed): only this turn.
            before = SessionHistoryCache.History()
        case let previous where previous == version:
            before = history
        default:
            // The session changed since `begin` read it in a way this request did not see.
            service.cache.remove(key)
            return
        }
        service.cache.keep(
            before.appending(decoded, bytes: turn.storedBytes, dropped: appended.droppedTurns), of: key,
            version: appended.version, in: service.store)
    }

    func release() {
        let held = token.withLock { token in
            let held = token
            token = nil
            return held
        }
        if let held { service?.locks.release(held) }
    }
}

/// Stored messages are one JSON object each, in the request's message shape (`role`,
/// `content`, `tool_calls`, `tool_call_id`, `name`), and read back through the request
/// decoder, so a stored history obeys the rules of a sent one. Reasoning and system prompts are
/// never among them. The control socket's `session` command shows them as they are.
enum SessionCodec {
    static func encode(_ message: ChatMessage) -> SessionMessage {
        var bytes: [UInt8] = []
        message.json.write(to: &bytes)
        return SessionMessage(bytes)
    }

    /// One message at a time: the decoder's per-request limits (such as 8 images) then bound
    /// each stored message, which one request sent, never the history as a whole.
    static func decode(_ stored: SessionMessage) throws(ErrorInfo) -> ChatMessage {
        guard let value = try? JSONParser.parse(bytes: stored.content),
            let message = try? decoder.decodeChat(["messages": [value]], id: .int(0), allowedKeys: ["messages"])
                .messages.first
        else {
            // A damaged database: an `internal` error rather than a history Mistral would refuse.
            throw ErrorInfo(code: .internal, message: "session store: a stored message is damaged")
        }
        return message
    }

    private static let decoder = RequestDecoder(makeID: { .int(0) }, acceptsCommands: false)
}
