import Synchronization

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
    private nonisolated let versions = Mutex(Versions())
    private nonisolated let removalObservers = Mutex<[@Sendable ([SessionKey]) -> Void]>([])

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
        try history(key, now: now).turns.flatMap { $0 }
    }

    /// What `read` returns, in whole turns, with the version it has now (nil for an empty
    /// history): the version a cache of this history is valid for.
    public func history(_ key: SessionKey, now: Timestamp = .now()) throws(SessionStoreError) -> SessionHistory {
        guard let stored = try backend("read a session").read(key, now: now) else {
            removed([key])
            return SessionHistory(turns: [], version: nil)
        }
        return SessionHistory(
            turns: stored.turns, version: versions.withLock { $0.read(key, expires: stored.expires) })
    }

    /// The version of the session's content now, or nil when this process has not seen it or
    /// it has expired: without a hop to the store's thread, so that a cached history can be
    /// checked on any thread. Every change to the session (an append, trimming, `forget`,
    /// expiry, eviction) gives it a new version or none.
    public nonisolated func version(of key: SessionKey, now: Timestamp = .now()) -> SessionVersion? {
        versions.withLock { $0.current(key, now: now) }
    }

    /// What a read does to recency and expiry, for a caller that has the history cached.
    public func touch(_ key: SessionKey, now: Timestamp = .now()) throws(SessionStoreError) {
        let expires = try backend("touch a session").touch(key, now: now)
        if let expires { versions.withLock { $0.touch(key, expires: expires) } } else { removed([key]) }
    }

    /// Calls `observer`, on the store's thread, with the keys of sessions that are gone
    /// (forgotten, expired, evicted), so that whoever holds copies of their content can drop
    /// them at once rather than when they would next be used.
    public nonisolated func onRemoval(_ observer: @escaping @Sendable ([SessionKey]) -> Void) {
        removalObservers.withLock { $0.append(observer) }
    }

    private func removed(_ keys: [SessionKey]) {
        guard !keys.isEmpty else { return }
        versions.withLock { $0.forget(keys) }
        for observer in removalObservers.withLock({ $0 }) { observer(keys) }
    }

    /// Appends one turn (the messages one request added), atomically: when this throws the
    /// session is as it was. The session's ttl becomes `limits.ttl`; the oldest whole turns
    /// are then dropped while it exceeds `limits.maxMessages` or `limits.maxBytes` (never this
    /// turn, even when it alone exceeds them), and the least recently used other sessions go
    /// while there are more than `limits.maxSessions`. Returns once the turn is on disk.
    @discardableResult
    public func append(
        _ key: SessionKey, turn: [SessionMessage], limits: SessionLimits, now: Timestamp = .now()
    ) throws(SessionStoreError) -> SessionAppend {
        let outcome = try backend("append to a session").append(key, turn: turn, limits: limits, now: now)
        removed(outcome.evicted)
        return versions.withLock { versions in
            versions.appended(
                key, continued: outcome.continued, expires: now + limits.ttl, dropped: outcome.droppedTurns)
        }
    }

    /// Removes the sessions idle past their ttl; returns how many. Reads already treat them as
    /// empty, so this only reclaims their space; the daemon calls it periodically.
    @discardableResult
    public func sweepExpired(now: Timestamp = .now()) throws(SessionStoreError) -> Int {
        let expired = try backend("remove expired sessions").sweepExpired(now: now)
        removed(expired)
        return expired.count
    }

    /// The live sessions, of one agent or of all, ordered by agent, uid and name.
    public func list(agent: String? = nil, now: Timestamp = .now()) throws(SessionStoreError) -> [SessionSummary] {
        try backend("list sessions").list(agent: agent, now: now)
    }

    /// Deletes the session; true when it existed. With SQLite the deleted text is also
    /// removed from the WAL and overwritten in the database file.
    public func forget(_ key: SessionKey) throws(SessionStoreError) -> Bool {
        // First: when the WAL checkpoint then fails the session is gone all the same.
        defer { removed([key]) }
        return try backend("forget a session").forget(key)
    }

    /// Closes the database (SQLite checkpoints the WAL into it); later calls throw `.closed`.
    public func close() {
        state = .closed
        versions.withLock { $0 = Versions() }
    }
}

/// Names one state of a session's content in this process: two reads that return the same
/// version returned the same turns. Versions are never reused, so a cache entry made for one
/// can never match the session after a change, whatever happened to it in between.
public struct SessionVersion: Sendable, Hashable {
    fileprivate let serial: UInt64
}

/// A session's turns, oldest first, and the version they are.
public struct SessionHistory: Sendable {
    public var turns: [[SessionMessage]]
    public var version: SessionVersion?
}

/// What an append did to the session, for a cache of its history.
public struct SessionAppend: Sendable {
    /// The version the appended turn followed; nil when the append started the session (it
    /// did not exist or had expired), which then holds only this turn.
    public var previous: SessionVersion?
    /// The version the session is now.
    public var version: SessionVersion
    /// How many of the oldest turns the limits dropped after the append.
    public var droppedTurns: Int
}

/// The version and expiry of each live session this process has read or appended to. Only
/// the store's thread changes it, within the operation that changed the session, so that no
/// caller can see a version the backend has moved past. At most one entry per live session.
private struct Versions {
    private var table: [SessionKey: (version: SessionVersion, expires: Timestamp)] = [:]
    private var nextSerial: UInt64 = 0

    private mutating func fresh() -> SessionVersion {
        nextSerial += 1
        return SessionVersion(serial: nextSerial)
    }

    func current(_ key: SessionKey, now: Timestamp) -> SessionVersion? {
        guard let entry = table[key], entry.expires > now else { return nil }
        return entry.version
    }

    /// A read leaves the content, and so its version, as it was.
    mutating func read(_ key: SessionKey, expires: Timestamp) -> SessionVersion {
        let version = table[key]?.version ?? fresh()
        table[key] = (version, expires)
        return version
    }

    mutating func touch(_ key: SessionKey, expires: Timestamp) {
        table[key]?.expires = expires
    }

    mutating func appended(_ key: SessionKey, continued: Bool, expires: Timestamp, dropped: Int) -> SessionAppend {
        // A continued session this process never read gets a version no cache entry has.
        let previous = continued ? table[key]?.version ?? fresh() : nil
        let version = fresh()
        table[key] = (version, expires)
        return SessionAppend(previous: previous, version: version, droppedTurns: dropped)
    }

    mutating func forget(_ keys: [SessionKey]) {
        for key in keys {
            table[key] = nil
        }
    }
}
