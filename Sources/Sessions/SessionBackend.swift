/// What the SQLite and the memory backend both do, with the same semantics (the tests run
/// each behaviour against both). `SessionStore` serialises every call on its thread, so a
/// backend needs no locking of its own.
///
/// Semantics shared by both:
/// - A session expires at `updated + ttl`, where `ttl` is the one its last append passed;
///   an expired session reads as empty, is not listed, and is replaced (not continued) by
///   the next append.
/// - Recency, for LRU eviction and for the ttl, is the last append or read: a conversation
///   someone keeps reading is in use.
protocol SessionBackend: AnyObject {
    /// The session's turns in order (oldest first) and its new expiry; nil for an unknown or
    /// expired session. Touches recency and pushes the expiry back by the session's ttl.
    func read(_ key: SessionKey, now: Timestamp) throws(SessionStoreError) -> StoredSession?

    /// What `read` does to recency and expiry, without reading the messages; returns the new
    /// expiry, nil for an unknown or expired session.
    func touch(_ key: SessionKey, now: Timestamp) throws(SessionStoreError) -> Timestamp?

    /// Appends `turn` as one turn, atomically: afterwards the session holds all of it or,
    /// when this throws, is as it was. Then trims the oldest whole turns to `limits` (never
    /// this turn) and evicts the least recently used sessions beyond `limits.maxSessions`
    /// (never this one).
    func append(
        _ key: SessionKey, turn: [SessionMessage], limits: SessionLimits, now: Timestamp
    ) throws(SessionStoreError) -> AppendOutcome

    /// Removes every session expired at `now`; returns their keys.
    func sweepExpired(now: Timestamp) throws(SessionStoreError) -> [SessionKey]

    /// Sessions not expired at `now`, of one agent or of all, ordered by agent, uid, name.
    func list(agent: String?, now: Timestamp) throws(SessionStoreError) -> [SessionSummary]

    /// Deletes the session; true when it existed (expired or not).
    func forget(_ key: SessionKey) throws(SessionStoreError) -> Bool
}

/// A live session as a backend read it.
struct StoredSession {
    var turns: [[SessionMessage]]
    var expires: Timestamp
}

/// What an append changed besides adding its turn, for the store's versions.
struct AppendOutcome {
    /// False when the append started the session: it did not exist or had expired.
    var continued: Bool
    /// How many of the oldest turns the limits dropped.
    var droppedTurns: Int
    /// The other sessions removed beyond `maxSessions`.
    var evicted: [SessionKey]
}
