import AgentProtocol
import Sessions
import Synchronization

/// The decoded histories of recently continued sessions, so that a continued session neither
/// waits for the store's thread nor decodes its stored messages again at every turn.
///
/// The store stays the source of truth: an entry is the history of one `SessionVersion`, and a
/// lookup returns it only while the store says the session is still at that version. Every
/// change to a session (an append, its trimming, `forget`, expiry, eviction, a restart) gives
/// it a new version or none, so a stale entry can never be returned, whichever path changed
/// the store. A removed session's entry also goes at once (`SessionStore.onRemoval`), so that
/// forgotten text does not stay in memory.
///
/// Bounded by entries and by the stored size of what they hold, least recently used first.
/// Only sessions continued while still cached gain from an entry, so the bound is the working
/// set of conversations in flight, not the store's `max_sessions`: 1024 sessions covers far
/// more concurrent conversations than the daemon's connection limit lets run, and 64 MiB of
/// stored JSON (decoded messages take about as much again in strings) caps it at 64 full
/// sessions of the default `max_bytes` (1 MiB), a small part of what those requests' own
/// buffers already take, while a miss costs only one read from the store.
final class SessionHistoryCache: Sendable {
    /// One session's history as the store holds it: in whole turns, so that an append's
    /// trimming can be applied to it as the store applied it.
    struct History: Sendable {
        var messages: [ChatMessage] = []
        /// Message count and stored size of each turn, oldest first.
        var turns: [(messages: Int, bytes: Int)] = []

        var bytes: Int { turns.reduce(0) { $0 + $1.bytes } }

        /// The history after the store appended `turn` (of `bytes` stored bytes) and then
        /// dropped its `dropped` oldest turns.
        func appending(_ turn: [ChatMessage], bytes: Int, dropped: Int) -> History {
            var next = self
            next.messages += turn
            next.turns.append((turn.count, bytes))
            next.messages.removeFirst(next.turns.prefix(dropped).reduce(0) { $0 + $1.messages })
            next.turns.removeFirst(dropped)
            return next
        }
    }

    private struct Entry {
        var version: SessionVersion
        var history: History
        var bytes: Int
        var lastUse: UInt64
    }

    private struct State {
        var entries: [SessionKey: Entry] = [:]
        var bytes = 0
        var clock: UInt64 = 0

        mutating func remove(_ key: SessionKey) {
            if let removed = entries.removeValue(forKey: key) { bytes -= removed.bytes }
        }
    }

    let maxEntries: Int
    let maxBytes: Int
    private let state = Mutex(State())

    init(maxEntries: Int = 1024, maxBytes: Int = 64 << 20) {
        self.maxEntries = maxEntries
        self.maxBytes = maxBytes
    }

    /// The history cached for `key` if it is `version`'s, as recently used.
    func history(_ key: SessionKey, version: SessionVersion) -> History? {
        state.withLock { state in
            guard var entry = state.entries[key], entry.version == version else { return nil }
            state.clock += 1
            entry.lastUse = state.clock
            state.entries[key] = entry
            return entry.history
        }
    }

    /// Keeps `history` as `version`'s, replacing what `key` had, then evicts the least
    /// recently used entries beyond the bounds. Nothing is kept when `store` has moved past
    /// `version` (checked under the cache's lock, so a removal that `onRemoval` reports while
    /// this runs still removes the entry), nor a history larger than `maxBytes`.
    func keep(_ history: History, of key: SessionKey, version: SessionVersion, in store: SessionStore) {
        let bytes = history.bytes
        state.withLock { state in
            state.remove(key)
            guard bytes <= maxBytes, store.version(of: key) == version else { return }
            state.clock += 1
            state.entries[key] = Entry(version: version, history: history, bytes: bytes, lastUse: state.clock)
            state.bytes += bytes
            while state.entries.count > maxEntries || state.bytes > maxBytes,
                let oldest = state.entries.min(by: { $0.value.lastUse < $1.value.lastUse })?.key
            {
                state.remove(oldest)
            }
        }
    }

    func remove(_ key: SessionKey) {
        state.withLock { $0.remove(key) }
    }

    /// How many sessions are cached, for tests of the bounds.
    var count: Int { state.withLock { $0.entries.count } }
}
