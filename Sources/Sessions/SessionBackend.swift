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
    /// The session's messages in order (oldest turn first); empty for an unknown or expired
    /// session. Touches recency and pushes the expiry back by the session's ttl.
    func read(_ key: SessionKey, now: Timestamp) throws(SessionStoreError) -> [SessionMessage]

    /// Appends `turn` as one turn, atomically: afterwards the session holds all of it or,
    /// when this throws, is as it was. Then trims the oldest whole turns to `limits` (never
    /// this turn) and evicts the least recently used sessions beyond `limits.maxSessions`
    /// (never this one).
    func append(
        _ key: SessionKey, turn: [SessionMessage], limits: SessionLimits, now: Timestamp
    ) throws(SessionStoreError)

    /// Removes every session expired at `now`; returns how many.
    func sweepExpired(now: Timestamp) throws(SessionStoreError) -> Int

    /// Sessions not expired at `now`, of one agent or of all, ordered by agent, uid, name.
    func list(agent: String?, now: Timestamp) throws(SessionStoreError) -> [SessionSummary]

    /// Deletes the session; true when it existed (expired or not).
    func forget(_ key: SessionKey) throws(SessionStoreError) -> Bool
}
