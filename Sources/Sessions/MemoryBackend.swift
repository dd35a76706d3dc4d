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
        var bytes: Int { turns.reduce(0) { $0 + $1.reduce(0) { $0 + $1.content.count } } }
    }

    private var sessions: [SessionKey: Session] = [:]
    private var nextSerial: UInt64 = 0

    func read(_ key: SessionKey, now: Timestamp) -> [SessionMessage] {
        guard var session = sessions[key] else { return [] }
        guard session.expires > now else {
            sessions[key] = nil
            return []
        }
        session.updated = now
        session.expires = now + session.ttl
        sessions[key] = session
        return session.turns.flatMap { $0 }
    }

    func append(_ key: SessionKey, turn: [SessionMessage], limits: SessionLimits, now: Timestamp) {
        var session: Session
        if let existing = sessions[key], existing.expires > now {
            session = existing
        } else {
            session = Session(turns: [], ttl: limits.ttl, updated: now, expires: now, serial: nextSerial)
            nextSerial += 1
        }
        session.turns.append(turn)
        let sizes = session.turns.map { turn in
            (messages: turn.count, bytes: turn.reduce(0) { $0 + $1.content.count })
        }
        session.turns.removeFirst(turnsToDrop(sizes, limits: limits))
        session.ttl = limits.ttl
        session.updated = now
        session.expires = now + limits.ttl
        sessions[key] = session

        let excess = sessions.count - limits.maxSessions
        if excess > 0 {
            let leastRecent = sessions.filter { $0.key != key }
                .sorted { ($0.value.updated, $0.value.serial) < ($1.value.updated, $1.value.serial) }
                .prefix(excess)
            for (evicted, _) in leastRecent {
                sessions[evicted] = nil
            }
        }
    }

    func sweepExpired(now: Timestamp) -> Int {
        let before = sessions.count
        sessions = sessions.filter { $0.value.expires > now }
        return before - sessions.count
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
