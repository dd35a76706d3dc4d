/// The durable session store (contract §9): conversations by `SessionKey`, stored as whole
/// turns of opaque messages, with ttl, trimming and LRU limits.
///
/// An actor whose executor is its own thread (`StoreThread`): calls from NIO event loops or
/// the cooperative pool hop there, so SQLite's blocking I/O never runs on them, and calls run
/// one at a time, so the backends need no locks. It knows nothing of the wire protocol.
///
/// Opening happens in `init`, on the caller's thread: the daemon opens the store once at
/// startup, before it serves.
public actor SessionStore {
    /// Where the sessions live, for the daemon's log and `status`.
    public enum Backing: Sendable, Equatable {
        case file(path: String)
        /// `fallbackReason` is why the database could not be opened, nil for `state_dir: memory`.
        case memory(fallbackReason: SessionStoreError?)
    }

    /// The `state_dir` value that keeps sessions in memory only (contract §3).
    public static let memoryStateDirectory = "memory"
    /// The database's file name inside `state_dir` (contract §1).
    public static let fileName = "sessions.sqlite3"

    public nonisolated let backing: Backing
    private let thread = StoreThread()

    private enum State {
        case open(any SessionBackend)
        case closed
    }
    private var state: State

    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        thread.asUnownedSerialExecutor()
    }

    /// Opens `<stateDirectory>/sessions.sqlite3`, or keeps sessions in memory when
    /// `stateDirectory` is `memory`. A database that cannot be opened (unwritable directory,
    /// corrupt file, newer schema) never fails the daemon: the store falls back to memory and
    /// `backing` says why, for the caller to log.
    public init(stateDirectory: String) {
        guard stateDirectory != Self.memoryStateDirectory else {
            backing = .memory(fallbackReason: nil)
            state = .open(MemoryBackend())
            return
        }
        let path = stateDirectory.hasSuffix("/") ? stateDirectory + Self.fileName : stateDirectory + "/" + Self.fileName
        do {
            state = .open(try SQLiteBackend(path: path))
            backing = .file(path: path)
        } catch {
            state = .open(MemoryBackend())
            backing = .memory(fallbackReason: error)
        }
    }

    /// For tests of the schema machinery: a database with its own list of migrations.
    init(path: String, migrations: [String]) throws(SessionStoreError) {
        state = .open(try SQLiteBackend(path: path, migrations: migrations))
        backing = .file(path: path)
    }

    deinit {
        thread.shutdown()
    }

    private func backend(_ operation: String) throws(SessionStoreError) -> any SessionBackend {
        switch state {
        case .open(let backend):
            return backend
        case .closed:
            throw SessionStoreError(.closed, message: "the session store is closed", operation: operation)
        }
    }

    /// The session's messages, oldest first; empty when it does not exist or has expired.
    /// A read counts as use: it moves the session's LRU recency and expiry to `now`.
    public func read(_ key: SessionKey, now: Timestamp = .now()) throws(SessionStoreError) -> [SessionMessage] {
        try backend("read a session").read(key, now: now)
    }

    /// Appends one turn (the messages one request added), atomically: when this throws the
    /// session is as it was. The session's ttl becomes `limits.ttl`; the oldest whole turns
    /// are then dropped while it exceeds `limits.maxMessages` or `limits.maxBytes` (never this
    /// turn, even when it alone exceeds them), and the least recently used other sessions go
    /// while there are more than `limits.maxSessions`. Returns once the turn is on disk.
    public func append(
        _ key: SessionKey, turn: [SessionMessage], limits: SessionLimits, now: Timestamp = .now()
    ) throws(SessionStoreError) {
        try backend("append to a session").append(key, turn: turn, limits: limits, now: now)
    }

    /// Removes the sessions idle past their ttl; returns how many. Reads already treat them as
    /// empty, so this only reclaims their space; the daemon calls it periodically.
    @discardableResult
    public func sweepExpired(now: Timestamp = .now()) throws(SessionStoreError) -> Int {
        try backend("remove expired sessions").sweepExpired(now: now)
    }

    /// The live sessions, of one agent or of all, ordered by agent, uid and name.
    public func list(agent: String? = nil, now: Timestamp = .now()) throws(SessionStoreError) -> [SessionSummary] {
        try backend("list sessions").list(agent: agent, now: now)
    }

    /// Deletes the session; true when it existed. With SQLite the deleted text is also
    /// removed from the WAL and overwritten in the database file.
    public func forget(_ key: SessionKey) throws(SessionStoreError) -> Bool {
        try backend("forget a session").forget(key)
    }

    /// Closes the database (SQLite checkpoints the WAL into it); later calls throw `.closed`.
    public func close() {
        state = .closed
    }
}
