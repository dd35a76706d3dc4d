#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Sessions in `<state_dir>/sessions.sqlite3`, so that a `done` that was sent survives
/// `kill -9`, SIGHUP and restarts (contract §9).
///
/// - WAL journal: an append is one short write transaction whose commit appends frames to the
///   WAL; readers (`agentctl sessions` through the daemon, or `sqlite3` by hand) do not block it.
/// - `synchronous=FULL`: every commit that changes content is fsynced before it returns, an
///   append before the runner sends `done`. `NORMAL` would already survive `kill -9` (the
///   frames are in the page cache once `write` returns) but not a power cut or kernel crash,
///   which would lose the last turns of a `done` the client saw. One fsync per finished
///   request is cheap next to the model call that preceded it. Only the recency update of a
///   read or a touch commits with `NORMAL`: it comes before the model call, and losing it to
///   a power cut only moves the session's last use back to its last durable change (the next
///   FULL commit's fsync covers its frames as well).
/// - `secure_delete=ON`: trimmed and forgotten messages are overwritten with zeros, not left
///   in free pages; `forget` also truncates the WAL, so forgotten text leaves the disk.
///   Debian's SQLite is built with this default; the pragma keeps it with any other build.
/// - `busy_timeout`: another connection (an operator's `sqlite3` shell) makes us wait, not fail.
final class SQLiteBackend: SessionBackend {
    /// The schema, one script per version; the script at index `i` moves version `i` to `i + 1`.
    /// Only ever append: a database records which versions it has and gets the rest in order.
    static let migrations = [
        """
        CREATE TABLE sessions (
            id INTEGER PRIMARY KEY,
            agent TEXT NOT NULL,
            uid INTEGER NOT NULL,
            name TEXT NOT NULL,
            ttl_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL,
            expires_ms INTEGER NOT NULL,
            messages INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            next_turn INTEGER NOT NULL,
            UNIQUE (agent, uid, name)
        );
        CREATE INDEX sessions_by_recency ON sessions (updated_ms, id);
        CREATE INDEX sessions_by_expiry ON sessions (expires_ms);
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            session INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            turn INTEGER NOT NULL,
            position INTEGER NOT NULL,
            content BLOB NOT NULL,
            UNIQUE (session, turn, position)
        );
        """
    ]

    /// How long a statement waits for another connection's lock before `SQLITE_BUSY`.
    static let busyTimeoutMilliseconds: Int32 = 5000

    private let connection: Connection
    private let statements: Statements
    /// Whether the connection's `synchronous` is FULL now (it starts so).
    private var durable = true

    /// Opens the database at `path`, creating it (mode 0600) and its directory (mode 0700; the
    /// directory's parent must exist) when missing, and brings its schema up to `migrations`.
    init(path: String, migrations: [String] = SQLiteBackend.migrations) throws(SessionStoreError) {
        try Self.createPrivateFile(path)
        let connection = try Connection(path: path)
        try connection.setBusyTimeout(milliseconds: Self.busyTimeoutMilliseconds)
        // The first statement reads the file: a corrupt or foreign file fails here.
        let journalMode = try connection.prepare("PRAGMA journal_mode = WAL").first { $0.text(0) }
        guard journalMode == "wal" else {
            throw SessionStoreError(
                .walUnavailable, message: "journal_mode is \(journalMode ?? "unknown"), not wal",
                operation: "open \(path)")
        }
        try connection.execute("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON")
        try Self.migrate(connection, to: migrations)
        self.connection = connection
        self.statements = try Statements(connection)
    }

    /// SQLite would create the file with the umask's mode, readable by all; session text is
    /// prompt content. The WAL and shared-memory files get the database file's mode from SQLite.
    private static func createPrivateFile(_ path: String) throws(SessionStoreError) {
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            let directory = String(path[..<slash])
            if mkdir(directory, 0o700) != 0, errno != EEXIST {
                throw systemError("create directory \(directory)")
            }
        }
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw systemError("create \(path)") }
        defer { close(descriptor) }
        guard fchmod(descriptor, 0o600) == 0 else { throw systemError("chmod 0600 \(path)") }
    }

    private static func systemError(_ operation: String) -> SessionStoreError {
        let number = errno
        return SessionStoreError(
            .system(errno: number), message: String(cString: strerror(number)), operation: operation)
    }

    /// Applies the missing migrations in order, with their `schema_version` rows, in one
    /// transaction: a crash or error mid-way leaves the previous version intact.
    private static func migrate(_ connection: Connection, to migrations: [String]) throws(SessionStoreError) {
        try connection.execute("BEGIN IMMEDIATE")
        do throws(SessionStoreError) {
            try connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)")
            let current = try connection.prepare("SELECT coalesce(max(version), 0) FROM schema_version").first {
                Int($0.integer(0))
            }
            let found = current ?? 0
            guard found <= migrations.count else {
                throw SessionStoreError(
                    .schemaTooNew(found: found, known: migrations.count),
                    message: "schema version \(found) is newer than this agentd's \(migrations.count)",
                    operation: "open \(connection.path)")
            }
            let record = try connection.prepare("INSERT INTO schema_version (version, applied_ms) VALUES (?1, ?2)")
            for version in found..<migrations.count {
                try connection.execute(migrations[version])
                try record.run([.integer(Int64(version + 1)), .integer(Timestamp.now().millisecondsSinceEpoch)])
            }
            try connection.execute("COMMIT")
        } catch {
            rollBack(connection)
            throw error
        }
    }

    /// Ends a failed transaction. Some errors (`SQLITE_FULL`, `SQLITE_IOERR`) make SQLite roll
    /// back by itself; a second ROLLBACK would fail and hide the first error, which is the one
    /// the caller throws, so the rollback's own failure is dropped.
    private static func rollBack(_ connection: Connection) {
        guard !connection.isAutocommit else { return }
        try? connection.execute("ROLLBACK")
    }

    /// Runs `body` in one write transaction (taking the write lock at BEGIN, so it never has to
    /// upgrade a read lock and fail with `SQLITE_BUSY` half-way). A `durable` one commits with
    /// `synchronous=FULL`: when that cannot be set, it does not start.
    private func transaction<T>(
        durable: Bool = true, _ body: () throws(SessionStoreError) -> T
    ) throws(SessionStoreError) -> T {
        if durable, !self.durable {
            try statements.synchronousFull.run()
            self.durable = true
        } else if !durable, self.durable, (try? statements.synchronousNormal.run()) != nil {
            // NORMAL only saves the fsync of a recency write: one that cannot set it commits with FULL.
            self.durable = false
        }
        try statements.begin.run()
        do throws(SessionStoreError) {
            let result = try body()
            try statements.commit.run()
            return result
        } catch {
            Self.rollBack(connection)
            throw error
        }
    }

    private struct Found {
        var id: Int64
        var ttlMilliseconds: Int64
        var expires: Timestamp
        var nextTurn: Int64
    }

    /// The session's row if it exists and has not expired; an expired one is deleted here, so
    /// that neither a read nor an append can continue it.
    private func live(_ key: SessionKey, now: Timestamp) throws(SessionStoreError) -> Found? {
        let found = try statements.find.first(key.values) { row in
            Found(
                id: row.integer(0), ttlMilliseconds: row.integer(1),
                expires: Timestamp(millisecondsSinceEpoch: row.integer(2)), nextTurn: row.integer(3))
        }
        guard let found else { return nil }
        guard found.expires > now else {
            try statements.deleteSession.run([.integer(found.id)])
            return nil
        }
        return found
    }

    func read(_ key: SessionKey, now: Timestamp) throws(SessionStoreError) -> StoredSession? {
        try transaction(durable: false) { () throws(SessionStoreError) in
            guard let session = try live(key, now: now) else { return nil }
            var turns: [[SessionMessage]] = []
            var current: Int64?
            try statements.readMessages.run([.integer(session.id)]) { row in
                let message = SessionMessage(row.blob(1))
                if row.integer(0) == current {
                    turns[turns.count - 1].append(message)
                } else {
                    current = row.integer(0)
                    turns.append([message])
                }
            }
            return StoredSession(turns: turns, expires: try touch(session, now: now))
        }
    }

    func touch(_ key: SessionKey, now: Timestamp) throws(SessionStoreError) -> Timestamp? {
        try transaction(durable: false) { () throws(SessionStoreError) in
            guard let session = try live(key, now: now) else { return nil }
            return try touch(session, now: now)
        }
    }

    private func touch(_ session: Found, now: Timestamp) throws(SessionStoreError) -> Timestamp {
        let expires = now + .milliseconds(session.ttlMilliseconds)
        try statements.touch.run([
            .integer(session.id), .integer(now.millisecondsSinceEpoch), .integer(expires.millisecondsSinceEpoch),
        ])
        return expires
    }

    func append(
        _ key: SessionKey, turn: [SessionMessage], limits: SessionLimits, now: Timestamp
    ) throws(SessionStoreError) -> AppendOutcome {
        try transaction { () throws(SessionStoreError) in
            let id: Int64
            let turnNumber: Int64
            let existing = try live(key, now: now)
            if let session = existing {
                id = session.id
                turnNumber = session.nextTurn
            } else {
                guard let inserted = try statements.insertSession.first(key.values, { $0.integer(0) }) else {
                    preconditionFailure("INSERT ... RETURNING id returned no row")
                }
                id = inserted
                turnNumber = 0
            }
            for (position, message) in turn.enumerated() {
                try statements.insertMessage.run([
                    .integer(id), .integer(turnNumber), .integer(Int64(position)), .blob(message.content),
                ])
            }

            var turns: [(number: Int64, messages: Int, bytes: Int)] = []
            try statements.turnSizes.run([.integer(id)]) { row in
                turns.append((row.integer(0), Int(row.integer(1)), Int(row.integer(2))))
            }
            let dropped = turnsToDrop(turns.map { ($0.messages, $0.bytes) }, limits: limits)
            if dropped > 0 {
                try statements.dropTurnsBefore.run([.integer(id), .integer(turns[dropped].number)])
            }
            let kept = turns[dropped...]
            try statements.update.run([
                .integer(id), .integer(limits.ttl.milliseconds), .integer(now.millisecondsSinceEpoch),
                .integer((now + limits.ttl).millisecondsSinceEpoch),
                .integer(Int64(kept.reduce(0) { $0 + $1.messages })), .integer(Int64(kept.reduce(0) { $0 + $1.bytes })),
                .integer(turnNumber + 1),
            ])
            var evicted: [SessionKey] = []
            try statements.evictLeastRecent.run([.integer(id), .integer(Int64(limits.maxSessions))]) { row in
                evicted.append(SessionKey(row))
            }
            return AppendOutcome(continued: existing != nil, droppedTurns: dropped, evicted: evicted)
        }
    }

    func sweepExpired(now: Timestamp) throws(SessionStoreError) -> [SessionKey] {
        try transaction { () throws(SessionStoreError) in
            var expired: [SessionKey] = []
            try statements.deleteExpired.run([.integer(now.millisecondsSinceEpoch)]) { row in
                expired.append(SessionKey(row))
            }
            return expired
        }
    }

    func list(agent: String?, now: Timestamp) throws(SessionStoreError) -> [SessionSummary] {
        var summaries: [SessionSummary] = []
        try statements.list.run([.integer(now.millisecondsSinceEpoch), agent.map { .text($0) } ?? .null]) { row in
            summaries.append(
                SessionSummary(
                    key: SessionKey(row), messages: Int(row.integer(3)), bytes: Int(row.integer(4)),
                    updated: Timestamp(millisecondsSinceEpoch: row.integer(5)),
                    expires: Timestamp(millisecondsSinceEpoch: row.integer(6))))
        }
        return summaries
    }

    /// Deletes the session and then truncates the WAL, whose frames still hold the deleted
    /// messages until a checkpoint. When the checkpoint fails (another connection holds the
    /// database past the busy timeout) the error is thrown although the session is already gone.
    func forget(_ key: SessionKey) throws(SessionStoreError) -> Bool {
        let existed = try transaction { () throws(SessionStoreError) in
            try statements.forget.run(key.values)
            return connection.changes > 0
        }
        try connection.checkpointTruncatingWAL()
        return existed
    }

    /// Every statement the backend runs, prepared once at open.
    private struct Statements {
        let begin: Statement
        let commit: Statement
        let synchronousFull: Statement
        let synchronousNormal: Statement
        let find: Statement
        let insertSession: Statement
        let insertMessage: Statement
        let turnSizes: Statement
        let dropTurnsBefore: Statement
        let update: Statement
        let evictLeastRecent: Statement
        let readMessages: Statement
        let touch: Statement
        let deleteSession: Statement
        let deleteExpired: Statement
        let forget: Statement
        let list: Statement

        init(_ connection: Connection) throws(SessionStoreError) {
            begin = try connection.prepare("BEGIN IMMEDIATE")
            commit = try connection.prepare("COMMIT")
            synchronousFull = try connection.prepare("PRAGMA synchronous = FULL")
            synchronousNormal = try connection.prepare("PRAGMA synchronous = NORMAL")
            find = try connection.prepare(
                "SELECT id, ttl_ms, expires_ms, next_turn FROM sessions WHERE agent = ?1 AND uid = ?2 AND name = ?3")
            insertSession = try connection.prepare(
                """
                INSERT INTO sessions (agent, uid, name, ttl_ms, updated_ms, expires_ms, messages, bytes, next_turn)
                VALUES (?1, ?2, ?3, 0, 0, 0, 0, 0, 0) RETURNING id
                """)
            insertMessage = try connection.prepare(
                "INSERT INTO messages (session, turn, position, content) VALUES (?1, ?2, ?3, ?4)")
            turnSizes = try connection.prepare(
                """
                SELECT turn, count(*), sum(length(content)) FROM messages WHERE session = ?1
                GROUP BY turn ORDER BY turn
                """)
            dropTurnsBefore = try connection.prepare("DELETE FROM messages WHERE session = ?1 AND turn < ?2")
            update = try connection.prepare(
                """
                UPDATE sessions SET ttl_ms = ?2, updated_ms = ?3, expires_ms = ?4, messages = ?5, bytes = ?6,
                next_turn = ?7 WHERE id = ?1
                """)
            // LIMIT takes a negative count as "no limit", hence max(0, ...).
            evictLeastRecent = try connection.prepare(
                """
                DELETE FROM sessions WHERE id IN (
                    SELECT id FROM sessions WHERE id != ?1 ORDER BY updated_ms, id
                    LIMIT max(0, (SELECT count(*) FROM sessions) - ?2))
                RETURNING agent, uid, name
                """)
            readMessages = try connection.prepare(
                "SELECT turn, content FROM messages WHERE session = ?1 ORDER BY turn, position")
            touch = try connection.prepare("UPDATE sessions SET updated_ms = ?2, expires_ms = ?3 WHERE id = ?1")
            deleteSession = try connection.prepare("DELETE FROM sessions WHERE id = ?1")
            deleteExpired = try connection.prepare(
                "DELETE FROM sessions WHERE expires_ms <= ?1 RETURNING agent, uid, name")
            forget = try connection.prepare("DELETE FROM sessions WHERE agent = ?1 AND uid = ?2 AND name = ?3")
            list = try connection.prepare(
                """
                SELECT agent, uid, name, messages, bytes, updated_ms, expires_ms FROM sessions
                WHERE expires_ms > ?1 AND (?2 IS NULL OR agent = ?2) ORDER BY agent, uid, name
                """)
        }
    }
}

extension SessionKey {
    /// The key as the `?1, ?2, ?3` parameters of the statements that look a session up.
    fileprivate var values: [Statement.Value] { [.text(agent), .integer(Int64(uid)), .text(name)] }

    /// The key in a row's first three columns: agent, uid, name.
    fileprivate init(_ row: Row) {
        self.init(agent: row.text(0), uid: UInt32(truncatingIfNeeded: row.integer(1)), name: row.text(2))
    }
}
