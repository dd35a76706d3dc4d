/// Sessions kept in this process only: `state_dir: memory`, or the fallback when the database
/// cannot be opened. Lost at exit, which is what the operator chose (or was told in the log).
final class MemoryBackend: SessionBackend {
    private struct Session {
        var turns: [[SessionMessage]]
        var ttl: Duration
        var updated: Timestamp
        var expires: Timestamp
        /// Creation order: breaks ties between sessions used in the same millisecond, as the
        /// SQLite backend's row id does.
        var serial: UInt64

        var messages: Int { turns.reduce(0) { $0 + $1.count } }
        var bytes: Int { turns.reduce(0) { $0 + $1.storedBytes } }
    }

    private var sessions: [SessionKey: Session] = [:]
    private var nextSerial: UInt64 = 0

    func read(_ key: SessionKey, now: Timestamp) -> StoredSession? {
        guard let expires = touch(key, now: now), let session = sessions[key] else { return nil }
        return StoredSession(turns: session.turns, expires: expires)
    }

    func touch(_ key: SessionKey, now: Timestamp) -> Timestamp? {
        guard var session = sessions[key] else { return nil }
        guard session.expires > now else {
            sessions[key] = nil
            return nil
        }
        session.updated = now
        session.expires = now + session.ttl
        sessions[key] = session
        return session.expires
    }

    func append(_ key: SessionKey, turn: [SessionMessage], limits: SessionLimits, now: Timestamp) -> AppendOutcome {
        var session: Session
        let continued: Bool
        if let existing = sessions[key], existing.expires > now {
            session = existing
            continued = true
        } else {
            session = Session(turns: [], ttl: limits.ttl, updated: now, expires: now, serial: nextSerial)
            nextSerial += 1
            continued = false
        }
        session.turns.append(turn)
        let sizes = session.turns.map { turn in
            (messages: turn.count, bytes: turn.storedBytes)
        }
        let dropped = turnsToDrop(sizes, limits: limits)
        session.turns.removeFirst(dropped)
        session.ttl = limits.ttl
        session.updated = now
        session.expires = now + limits.ttl
        sessions[key] = session

        var evicted: [SessionKey] = []
        let excess = sessions.count - limits.maxSessions
        if excess > 0 {
            evicted = sessions.filter { $0.key != key }
                .sorted { ($0.value.updated, $0.value.serial) < ($1.value.updated, $1.value.serial) }
                .prefix(excess).map(\.key)
            for gone in evicted {
                sessions[gone] = nil
            }
        }
        return AppendOutcome(continued: continued, droppedTurns: dropped, evicted: evicted)
    }

    func sweepExpired(now: Timestamp) -> [SessionKey] {
        let expired = sessions.filter { $0.value.expires <= now }.map(\.key)
        for key in expired {
            sessions[key] = nil
        }
        return expired
    }

    func list(agent: String?, now: Timestamp) -> [SessionSummary] {
        sessions.filter { key, session in session.expires > now && (agent == nil || key.agent == agent) }
            .map { key, session in
                SessionSummary(
                    key: key, messages: session.messages, bytes: session.bytes, updated: session.updated,
                    expires: session.expires)
            }
            .sorted { ($0.key.agent, $0.key.uid, $0.key.name) < ($1.key.agent, $1.key.uid, $1.key.name) }
    }

    func forget(_ key: SessionKey) -> Bool {
        sessions.removeValue(forKey: key) != nil
    }
}
