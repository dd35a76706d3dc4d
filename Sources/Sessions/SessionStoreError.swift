/// Why the session store could not do something: what went wrong (`code`), in whose words
/// (`message`: SQLite's `sqlite3_errmsg`, `strerror`, or ours) and what the store was doing
/// (`operation`). Never carries session content, which is prompt text (contract §9).
public struct SessionStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        /// A SQLite result code and its extended code (`SQLITE_IOERR_WRITE`, ...).
        case sqlite(primary: Int32, extended: Int32)
        /// A system call failed with this errno (creating the directory or the file).
        case system(errno: Int32)
        /// The database was written by a newer agentd, whose schema this one does not know;
        /// it is left untouched rather than downgraded.
        case schemaTooNew(found: Int, known: Int)
        /// `journal_mode=WAL` was refused (the file system cannot share memory, for example).
        case walUnavailable
        /// The store was closed.
        case closed
    }

    public var code: Code
    public var message: String
    /// What was being done, e.g. "append to a session" or "open /var/lib/agentd/sessions.sqlite3".
    public var operation: String

    public init(_ code: Code, message: String, operation: String) {
        self.code = code
        self.message = message
        self.operation = operation
    }

    public var description: String {
        switch code {
        case .sqlite(let primary, let extended):
            return "sessions database: \(operation): \(message) (SQLite code \(primary), extended \(extended))"
        case .system(let errno):
            return "sessions database: \(operation): \(message) (errno \(errno))"
        case .schemaTooNew, .walUnavailable, .closed:
            return "sessions database: \(operation): \(message)"
        }
    }
}
