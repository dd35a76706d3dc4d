/// Tool call ids as the client wrote them and as Mistral sees them.
///
/// Mistral accepts only ids of exactly nine ASCII letters or digits. Ids already in that form
/// are sent unchanged; every other id gets a derived one, the same for every occurrence in a
/// request, distinct from every other id in it.
public struct ToolCallIDMap: Sendable, Hashable {
    private var wireByClient: [String: String] = [:]
    private var clientByWire: [String: String] = [:]

    public init() {}

    /// Builds the mapping for `clientIDs` (in order of appearance; repeats allowed).
    public init(clientIDs: [String]) {
        var taken = Set(clientIDs.filter(Self.isWireForm))
        for id in clientIDs where wireByClient[id] == nil {
            let wire = Self.isWireForm(id) ? id : Self.derivedID(for: id, avoiding: taken)
            taken.insert(wire)
            wireByClient[id] = wire
            clientByWire[wire] = id
        }
    }

    /// The id to send for a client's id (unknown ids pass through unchanged).
    public func wireID(for clientID: String) -> String { wireByClient[clientID] ?? clientID }

    /// The client's id for an id Mistral sent back (ids the history never used pass through).
    public func clientID(for wireID: String) -> String { clientByWire[wireID] ?? wireID }

    /// Whether `id` is already in Mistral's form: nine characters from `[a-zA-Z0-9]`.
    public static func isWireForm(_ id: String) -> Bool {
        id.utf8.count == 9 && id.utf8.allSatisfy(isAlphanumeric)
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        default: false
        }
    }

    private static let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)

    /// A stable function of the id (FNV-1a, not Swift's per-process seeded `Hasher`), salted
    /// until it differs from every id already taken.
    private static func derivedID(for id: String, avoiding taken: Set<String>) -> String {
        var salt: UInt64 = 0
        while true {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in id.utf8 {
                hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
            }
            hash = (hash ^ salt) &* 0x0000_0100_0000_01b3
            // 62^9 < 2^64: nine base-62 digits of the hash are all meaningful.
            var characters: [UInt8] = []
            for _ in 0..<9 {
                characters.append(alphabet[Int(hash % 62)])
                hash /= 62
            }
            let candidate = String(decoding: characters, as: UTF8.self)
            if !taken.contains(candidate) { return candidate }
            salt &+= 1
        }
    }
}
