internal import CSQLite

/// One SQLite connection. Not thread-safe by itself: each connection is confined to the
/// thread of the `SessionStore` that owns it (tests open a second one on their own task).
final class Connection {
    private let handle: OpaquePointer
    /// For error messages: "open /var/lib/agentd/sessions.sqlite3".
    let path: String

    /// Opens (creating) the database at `path`. Nothing is read yet: a file that is not a
    /// database fails at the first statement, not here.
    init(path: String) throws(SessionStoreError) {
        var handle: OpaquePointer?
        let code = sqlite3_open_v2(
            path, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_EXRESCODE, nil)
        guard let handle else {
            // Only when SQLite cannot even allocate the handle.
            throw SessionStoreError(
                .sqlite(primary: code, extended: code), message: String(cString: sqlite3_errstr(code)),
                operation: "open \(path)")
        }
        self.handle = handle
        self.path = path
        do {
            try check(code, "open \(path)")
        } catch {
            sqlite3_close_v2(handle)
            throw error
        }
    }

    /// `sqlite3_close_v2` defers the close until the last statement is finalized, so the
    /// order of deinits of a connection and its statements does not matter.
    deinit {
        sqlite3_close_v2(handle)
    }

    /// The funnel for every SQLite result code: `SQLITE_OK`, `SQLITE_ROW` and `SQLITE_DONE`
    /// pass through (and are returned for `step` to tell them apart); any other code becomes
    /// an error with the primary and extended code, `sqlite3_errmsg` and what was being done.
    @discardableResult
    func check(_ code: Int32, _ operation: @autoclosure () -> String) throws(SessionStoreError) -> Int32 {
        // The primary code is the low byte of an extended one.
        switch code & 0xff {
        case SQLITE_OK, SQLITE_ROW, SQLITE_DONE:
            return code
        default:
            throw SessionStoreError(
                .sqlite(primary: code & 0xff, extended: sqlite3_extended_errcode(handle)),
                message: String(cString: sqlite3_errmsg(handle)), operation: operation())
        }
    }

    /// Runs one or more statements that return no rows we need (schema, pragmas).
    func execute(_ sql: String) throws(SessionStoreError) {
        try check(sqlite3_exec(handle, sql, nil, nil, nil), "execute \(sql)")
    }

    /// A statement prepared once and reused; `SQLITE_PREPARE_PERSISTENT` tells SQLite so.
    func prepare(_ sql: String) throws(SessionStoreError) -> Statement {
        var statement: OpaquePointer?
        try check(
            sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil), "prepare \(sql)")
        guard let statement else {
            // An empty or comment-only SQL string, which is our bug.
            preconditionFailure("no statement in \(sql)")
        }
        return Statement(statement, connection: self, sql: sql)
    }

    /// Waits up to `milliseconds` for another connection's lock instead of failing at once
    /// with `SQLITE_BUSY`.
    func setBusyTimeout(milliseconds: Int32) throws(SessionStoreError) {
        try check(sqlite3_busy_timeout(handle, milliseconds), "set busy_timeout")
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE (cascaded deletes not counted).
    var changes: Int { Int(sqlite3_changes(handle)) }

    /// True outside a transaction: also after SQLite rolled one back by itself.
    var isAutocommit: Bool { sqlite3_get_autocommit(handle) != 0 }

    /// Copies every WAL frame into the database and truncates the WAL to zero bytes, so
    /// content deleted before it no longer lingers in the WAL file.
    func checkpointTruncatingWAL() throws(SessionStoreError) {
        try check(
            sqlite3_wal_checkpoint_v2(handle, nil, SQLITE_CHECKPOINT_TRUNCATE, nil, nil), "checkpoint the WAL")
    }
}

/// A prepared statement. Each use binds from scratch, steps, and resets, so a statement is
/// never left holding a read transaction open or a stale binding.
final class Statement {
    private let handle: OpaquePointer
    /// Keeps the connection alive as long as its statements (Swift frees the connection last).
    private let connection: Connection
    private let sql: String

    fileprivate init(_ handle: OpaquePointer, connection: Connection, sql: String) {
        self.handle = handle
        self.connection = connection
        self.sql = sql
    }

    deinit {
        sqlite3_finalize(handle)
    }

    /// A value to bind to a `?` parameter.
    enum Value {
        case integer(Int64)
        case text(String)
        case blob([UInt8])
        case null
    }

    /// Binds `values` to the parameters in order, steps through every row handing each to
    /// `row`, and resets the statement.
    func run(
        _ values: [Value] = [], row: (Row) throws(SessionStoreError) -> Void = { _ in }
    ) throws(SessionStoreError) {
        defer {
            // sqlite3_reset repeats the error of a failed step, which was already thrown; it
            // cannot fail otherwise.
            sqlite3_reset(handle)
            sqlite3_clear_bindings(handle)
        }
        for (offset, value) in values.enumerated() {
            try bind(value, at: Int32(offset + 1))
        }
        while try connection.check(sqlite3_step(handle), "run \(sql)") == SQLITE_ROW {
            try row(Row(handle: handle))
        }
    }

    /// The first row's `read` result, or nil without rows.
    func first<T>(_ values: [Value] = [], _ read: (Row) -> T) throws(SessionStoreError) -> T? {
        var result: T?
        try run(values) { row in
            if result == nil { result = read(row) }
        }
        return result
    }

    private func bind(_ value: Value, at index: Int32) throws(SessionStoreError) {
        let operation = "bind parameter \(index) of \(sql)"
        switch value {
        case .integer(let integer):
            try connection.check(sqlite3_bind_int64(handle, index, integer), operation)
        case .text(let text):
            try connection.check(agentd_sqlite3_bind_text_transient(handle, index, text), operation)
        case .blob(let bytes) where bytes.isEmpty:
            // An empty buffer has no base address, which SQLite would bind as NULL.
            try connection.check(sqlite3_bind_zeroblob(handle, index, 0), operation)
        case .blob(let bytes):
            let code = bytes.withUnsafeBytes { buffer in
                agentd_sqlite3_bind_blob_transient(handle, index, buffer.baseAddress, UInt64(buffer.count))
            }
            try connection.check(code, operation)
        case .null:
            try connection.check(sqlite3_bind_null(handle, index), operation)
        }
    }
}

/// The current row of a stepping statement; valid only inside the `run` callback.
struct Row {
    fileprivate let handle: OpaquePointer

    func integer(_ column: Int32) -> Int64 {
        sqlite3_column_int64(handle, column)
    }

    func text(_ column: Int32) -> String {
        guard let text = sqlite3_column_text(handle, column) else { return "" }
        return String(cString: text)
    }

    func blob(_ column: Int32) -> [UInt8] {
        // sqlite3_column_blob first, then sqlite3_column_bytes, as SQLite's docs ask.
        guard let bytes = sqlite3_column_blob(handle, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: bytes, count: Int(sqlite3_column_bytes(handle, column))))
    }
}
