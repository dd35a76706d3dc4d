#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Names one session: a session belongs to one agent and one peer uid, so the same name from
/// another uid is another session (contract §4, `session`).
public struct SessionKey: Sendable, Hashable, CustomStringConvertible {
    public var agent: String
    public var uid: UInt32
    public var name: String

    public init(agent: String, uid: UInt32, name: String) {
        self.agent = agent
        self.uid = uid
        self.name = name
    }

    public var description: String { "\(agent)/\(uid)/\(name)" }
}

/// One stored message, opaque to the store: the runner's encoding of a user, assistant or
/// tool message (one JSON object). The store needs nothing of its role: it trims by whole
/// turns (the messages one `append` stored together) and by size, which is `content.count`.
public struct SessionMessage: Sendable, Hashable {
    public var content: [UInt8]

    public init(_ content: [UInt8]) {
        self.content = content
    }

    /// A message from its JSON text, stored as UTF-8.
    public init(json: String) {
        self.content = Array(json.utf8)
    }

    /// The content as text, for a caller that stored JSON text.
    public var text: String { String(decoding: content, as: UTF8.self) }
}

extension [SessionMessage] {
    /// A turn's size as `max_bytes` counts it, and as a cache of stored histories must count
    /// it to trim them as the store did.
    public var storedBytes: Int { reduce(0) { $0 + $1.content.count } }
}

/// The contract's `sessions:` limits (§3), with its defaults. An agent may override `ttl` and
/// `maxMessages`; the store applies whatever limits each `append` passes.
public struct SessionLimits: Sendable, Hashable {
    /// A session neither read nor appended to for this long is forgotten.
    public var ttl: Duration
    /// Oldest whole turns are dropped while a session holds more messages than this.
    public var maxMessages: Int
    /// Oldest whole turns are dropped while a session's content is larger than this.
    public var maxBytes: Int
    /// Beyond this many sessions the least recently used ones are removed.
    public var maxSessions: Int

    public init(
        ttl: Duration = .seconds(24 * 60 * 60), maxMessages: Int = 200, maxBytes: Int = 1 << 20,
        maxSessions: Int = 10_000
    ) {
        self.ttl = ttl
        self.maxMessages = maxMessages
        self.maxBytes = maxBytes
        self.maxSessions = maxSessions
    }

    public static let defaults = SessionLimits()
}

/// Wall-clock time in milliseconds since the Unix epoch. Sessions outlive the process, so
/// expiry cannot use a monotonic clock; every operation takes its `now` so tests can move time.
public struct Timestamp: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var millisecondsSinceEpoch: Int64

    public init(millisecondsSinceEpoch: Int64) {
        self.millisecondsSinceEpoch = millisecondsSinceEpoch
    }

    /// The current wall-clock time (`CLOCK_REALTIME`).
    public static func now() -> Timestamp {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Timestamp(millisecondsSinceEpoch: Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000)
    }

    /// Saturates instead of trapping, so a ttl of years cannot crash the daemon.
    public static func + (lhs: Timestamp, rhs: Duration) -> Timestamp {
        let (sum, overflow) = lhs.millisecondsSinceEpoch.addingReportingOverflow(rhs.milliseconds)
        return Timestamp(millisecondsSinceEpoch: overflow ? (rhs < .zero ? .min : .max) : sum)
    }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool {
        lhs.millisecondsSinceEpoch < rhs.millisecondsSinceEpoch
    }

    public var description: String { "\(millisecondsSinceEpoch) ms" }
}

extension Duration {
    /// Whole milliseconds, saturating at the ends of `Int64`.
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflowAdding) = whole.addingReportingOverflow(attoseconds / 1_000_000_000_000_000)
        return overflowAdding ? (seconds < 0 ? .min : .max) : sum
    }
}

/// What `list` reports of a session (the control socket's `sessions` command, contract §4).
public struct SessionSummary: Sendable, Hashable {
    public var key: SessionKey
    public var messages: Int
    /// The sum of the stored messages' sizes.
    public var bytes: Int
    /// The last append or read.
    public var updated: Timestamp
    /// When it is forgotten unless used again: `updated` plus the ttl of its last append.
    public var expires: Timestamp

    public init(key: SessionKey, messages: Int, bytes: Int, updated: Timestamp, expires: Timestamp) {
        self.key = key
        self.messages = messages
        self.bytes = bytes
        self.updated = updated
        self.expires = expires
    }
}

/// The shared trimming rule of both backends: how many of the oldest turns to drop so that
/// the rest fit `limits`. The last turn (the one just appended) is never dropped, even when
/// it alone exceeds a limit: dropping it would leave the next request without the answer it
/// continues from. The next append, whose turn is then the last, drops it if still needed.
///
/// - Parameter turns: message count and byte size of each turn, oldest first.
func turnsToDrop(_ turns: [(messages: Int, bytes: Int)], limits: SessionLimits) -> Int {
    var messages = turns.reduce(0) { $0 + $1.messages }
    var bytes = turns.reduce(0) { $0 + $1.bytes }
    var dropped = 0
    while dropped < turns.count - 1, messages > limits.maxMessages || bytes > limits.maxBytes {
        messages -= turns[dropped].messages
        bytes -= turns[dropped].bytes
        dropped += 1
    }
    return dropped
}
