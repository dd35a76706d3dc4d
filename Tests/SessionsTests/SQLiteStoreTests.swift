import Glibc
import Testing

@testable import Sessions

/// What only the SQLite backend promises: the file, its schema, durability, atomicity under
/// real SQLite errors, and the fallback to memory.
@Suite struct SQLiteStoreTests {
    @Test func turnsSurviveClosingAndReopening() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let first = SessionStore(stateDirectory: directory.path)
        try await first.append(key("a"), turn: turn(1, messages: 2), limits: roomy, now: t0)
        try await first.append(key("a"), turn: turn(2, messages: 1), limits: roomy, now: t0)
        await first.close()

        let second = SessionStore(stateDirectory: directory.path)
        #expect(second.backing == .file(path: directory.databasePath))
        #expect(try await second.read(key("a"), now: t0) == turn(1, messages: 2) + turn(2, messages: 1))
        // The turn numbering goes on where it was: a new turn lands after the stored ones.
        try await second.append(key("a"), turn: turn(3, messages: 1), limits: roomy, now: t0)
        #expect(try await second.read(key("a"), now: t0).last == .named("t3.0"))
        await second.close()
    }

    @Test func anAppendFailingHalfWayLeavesTheSessionAsItWas() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = SessionStore(stateDirectory: directory.path)
        try await store.append(key("a"), turn: turn(1, messages: 2), limits: roomy, now: t0)
        let before = try await store.list(now: t0)

        // Another connection makes the second message of every later insert fail, after the
        // first message of the turn (and a new session's row) went in.
        let saboteur = try Connection(path: directory.databasePath)
        try saboteur.execute(
            """
            CREATE TRIGGER fail_second_message BEFORE INSERT ON messages WHEN NEW.position = 1
            BEGIN SELECT RAISE(ABORT, 'injected failure'); END
            """)

        let error = await #expect(throws: SessionStoreError.self) {
            try await store.append(key("a"), turn: turn(2, messages: 2), limits: roomy, now: t0 + .seconds(1))
        }
        // SQLITE_CONSTRAINT, SQLITE_CONSTRAINT_TRIGGER
        #expect(error?.code == .sqlite(primary: 19, extended: 1811))
        #expect(error?.message == "injected failure")
        #expect(error?.operation.hasPrefix("run INSERT INTO messages") == true)
        await #expect(throws: SessionStoreError.self) {
            try await store.append(key("new"), turn: turn(1, messages: 2), limits: roomy, now: t0 + .seconds(1))
        }

        #expect(try await store.list(now: t0) == before)
        #expect(try await store.read(key("a"), now: t0) == turn(1, messages: 2))

        // The failed transactions were rolled back, not left open: the store goes on working.
        try saboteur.execute("DROP TRIGGER fail_second_message")
        try await store.append(key("a"), turn: turn(2, messages: 2), limits: roomy, now: t0)
        #expect(try await store.read(key("a"), now: t0) == turn(1, messages: 2) + turn(2, messages: 2))
        await store.close()
    }

    /// Set in the child process that this test starts: the directory of its database.
    static let crashChildVariable = "AGENTD_SESSIONS_CRASH_CHILD_DIR"

    /// A child process (this test binary, running only this test) appends and is killed with
    /// SIGKILL the moment `append` returns, without closing anything; a new store on the same
    /// file must see the turn.
    @Test func anAppendThatReturnedSurvivesSIGKILL() async throws {
        if let directory = getenv(Self.crashChildVariable).map({ String(cString: $0) }) {
            let store = SessionStore(stateDirectory: directory)
            try await store.append(key("a"), turn: turn(1, messages: 3), limits: roomy, now: t0)
            kill(getpid(), SIGKILL)
        }

        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let child = "\(Self.crashChildVariable)=\(directory.path)"
        let status = try runSelf(test: "anAppendThatReturnedSurvivesSIGKILL", environment: [child])
        #expect(status.killedBy == SIGKILL)
        // The turn is in the WAL, not yet checkpointed: a clean close would have removed the WAL.
        #expect((contents(of: directory.databasePath + "-wal")?.count ?? 0) > 0)

        let store = SessionStore(stateDirectory: directory.path)
        #expect(try await store.read(key("a"), now: t0) == turn(1, messages: 3))
        await store.close()
    }

    @Test func theDatabaseAndItsWALAreReadableByTheOwnerOnly() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let stateDirectory = directory.path + "/state"
        let store = SessionStore(stateDirectory: stateDirectory)
        try #require(store.backing == .file(path: stateDirectory + "/sessions.sqlite3"))
        try await store.append(key("a"), turn: turn(1, messages: 1), limits: roomy, now: t0)

        #expect(mode(of: stateDirectory) == 0o700)
        #expect(mode(of: stateDirectory + "/sessions.sqlite3") == 0o600)
        #expect(mode(of: stateDirectory + "/sessions.sqlite3-wal") == 0o600)
        #expect(mode(of: stateDirectory + "/sessions.sqlite3-shm") == 0o600)
        await store.close()
    }

    @Test func anExistingFileWithLaxModeIsMadePrivate() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try write([], to: directory.databasePath)
        try #require(chmod(directory.databasePath, 0o644) == 0)
        let store = SessionStore(stateDirectory: directory.path)
        #expect(mode(of: directory.databasePath) == 0o600)
        await store.close()
    }

    @Test func anEmptyFileIsMigratedAndRecordsItsSchemaVersion() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try write([], to: directory.databasePath)
        let store = SessionStore(stateDirectory: directory.path)
        try #require(store.backing == .file(path: directory.databasePath))
        try await store.append(key("a"), turn: turn(1, messages: 1), limits: roomy, now: t0)
        await store.close()

        let connection = try Connection(path: directory.databasePath)
        #expect(try versions(connection) == [1])
        #expect(try tables(connection) == ["messages", "schema_version", "sessions"])
    }

    @Test func laterMigrationsAreAppliedInOrderAndANewerSchemaIsRefused() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let version1 = try SessionStore(path: directory.databasePath, migrations: SQLiteBackend.migrations)
        try await version1.append(key("a"), turn: turn(1, messages: 1), limits: roomy, now: t0)
        await version1.close()

        // A version 2 and 3 that build on each other: 3 fails unless 2 ran first.
        let upgraded =
            SQLiteBackend.migrations + [
                "CREATE TABLE notes (session INTEGER NOT NULL, text TEXT NOT NULL)",
                "ALTER TABLE notes ADD COLUMN author TEXT",
            ]
        let version3 = try SessionStore(path: directory.databasePath, migrations: upgraded)
        #expect(try await version3.read(key("a"), now: t0) == turn(1, messages: 1))
        await version3.close()
        let connection = try Connection(path: directory.databasePath)
        #expect(try versions(connection) == [1, 2, 3])

        // This agentd knows only version 1: it leaves the file alone and keeps sessions in memory.
        let error = #expect(throws: SessionStoreError.self) {
            try SessionStore(path: directory.databasePath, migrations: SQLiteBackend.migrations)
        }
        #expect(error?.code == .schemaTooNew(found: 3, known: 1))
        let fallback = SessionStore(stateDirectory: directory.path)
        #expect(fallback.backing == .memory(fallbackReason: error))
        #expect(try versions(connection) == [1, 2, 3])
        await fallback.close()
    }

    @Test func anUncreatableDirectoryFallsBackToMemory() async throws {
        // Tests run as root, who may write anywhere: a path under a file fails for anyone.
        let store = SessionStore(stateDirectory: "/dev/null/agentd")
        guard case .memory(let reason?) = store.backing else {
            Issue.record("expected the memory fallback, got \(store.backing)")
            return
        }
        #expect(reason.code == .system(errno: ENOTDIR))
        #expect(
            reason.description == "sessions database: create directory /dev/null/agentd: Not a directory (errno 20)")
        // Sessions still work, in memory.
        try await store.append(key("a"), turn: turn(1, messages: 1), limits: roomy, now: t0)
        #expect(try await store.read(key("a"), now: t0) == turn(1, messages: 1))
        await store.close()
    }

    @Test func aCorruptFileFallsBackToMemoryAndIsLeftAlone() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let garbage = Array(String(repeating: "this is not a database. ", count: 200).utf8)
        try write(garbage, to: directory.databasePath)

        let store = SessionStore(stateDirectory: directory.path)
        guard case .memory(let reason?) = store.backing else {
            Issue.record("expected the memory fallback, got \(store.backing)")
            return
        }
        #expect(reason.code == .sqlite(primary: 26, extended: 26))  // SQLITE_NOTADB
        await store.close()
        #expect(contents(of: directory.databasePath) == garbage)
    }

    @Test func forgottenTextLeavesTheWALAndTheDatabaseFile() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = SessionStore(stateDirectory: directory.path)
        let secret = "the-forgotten-secret-7f3a"
        let kept = "the-kept-conversation-91c2"
        try await store.append(key("kept"), turn: [.named(kept)], limits: roomy, now: t0)
        try await store.append(key("secret"), turn: [.named(secret)], limits: roomy, now: t0)
        // Before: the secret is on disk (so the check below can see it).
        let wal = directory.databasePath + "-wal"
        #expect(contents(of: wal)?.contains(text: secret) == true)

        #expect(try await store.forget(key("secret")))

        #expect(contents(of: wal)?.contains(text: secret) != true)
        #expect(contents(of: directory.databasePath)?.contains(text: secret) == false)
        // The checkpoint moved the rest into the database file: the bytes were really searched.
        #expect(contents(of: directory.databasePath)?.contains(text: kept) == true)
        await store.close()
    }

    private func versions(_ connection: Connection) throws -> [Int64] {
        var versions: [Int64] = []
        try connection.prepare("SELECT version FROM schema_version ORDER BY version").run {
            versions.append($0.integer(0))
        }
        return versions
    }

    private func tables(_ connection: Connection) throws -> [String] {
        var names: [String] = []
        try connection.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").run {
            names.append($0.text(0))
        }
        return names
    }
}

/// How a child process ended.
struct ExitStatus {
    var raw: Int32

    /// The signal that killed it, or nil when it exited.
    var killedBy: Int32? {
        let signal = raw & 0x7f
        return signal != 0 && signal != 0x7f ? signal : nil
    }
}

/// Runs this test binary again with Swift Testing limited to one test, `environment` added to
/// ours, and its output discarded; waits for it.
func runSelf(test: String, environment: [String]) throws -> ExitStatus {
    let arguments = ["/proc/self/exe", "--testing-library", "swift-testing", "--filter", test]
    var variables = environment
    var entry = environ
    while let variable = entry.pointee {
        variables.append(String(cString: variable))
        entry += 1
    }
    let argv = arguments.map { strdup($0) } + [nil]
    let envp = variables.map { strdup($0) } + [nil]
    defer {
        for pointer in argv + envp { free(pointer) }
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)

    var pid = pid_t()
    let spawned = posix_spawn(&pid, arguments[0], &actions, nil, argv, envp)
    try #require(spawned == 0, "posix_spawn: \(String(cString: strerror(spawned)))")
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
        try #require(errno == EINTR, "waitpid: \(String(cString: strerror(errno)))")
    }
    return ExitStatus(raw: status)
}
