import Synchronization

/// One request per session at a time (contract §9, `session_busy`): the runner acquires the
/// session's lock before it reads the session and releases it after its append or error.
/// In memory only: a restart ends every request, so no lock can outlive its holder.
public final class SessionLocks: Sendable {
    /// Proof of holding one session's lock. Releasing a token that is no longer current (its
    /// lock was released already) does nothing, so a late second release cannot free the lock
    /// another request now holds.
    public struct Token: Sendable, Hashable {
        public let key: SessionKey
        fileprivate let serial: UInt64
    }

    private struct Table {
        var held: [SessionKey: UInt64] = [:]
        var nextSerial: UInt64 = 0
    }

    private let table = Mutex(Table())

    public init() {}

    /// The lock of `key`, or nil when another request holds it (answer `session_busy`).
    public func acquire(_ key: SessionKey) -> Token? {
        table.withLock { table in
            guard table.held[key] == nil else { return nil }
            let serial = table.nextSerial
            table.nextSerial += 1
            table.held[key] = serial
            return Token(key: key, serial: serial)
        }
    }

    public func release(_ token: Token) {
        table.withLock { table in
            if table.held[token.key] == token.serial {
                table.held[token.key] = nil
            }
        }
    }
}
