/// Splits bytes read from a stream into `\n`-terminated lines, for the blocking clients of the
/// line protocol (agentctl, the tests). The daemon frames lines in NIO with a length bound
/// (`LineFramer`); these clients trust their peer.
public struct LineBuffer: Sendable {
    private var pending: [UInt8] = []
    /// Bytes of `pending` already searched for a newline, so a long line is scanned once.
    private var scanned = 0

    public init() {}

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        pending.append(contentsOf: bytes)
    }

    /// The next complete line without its `\n`; nil until one has arrived.
    public mutating func nextLine() -> [UInt8]? {
        guard let newline = pending[scanned...].firstIndex(of: UInt8(ascii: "\n")) else {
            scanned = pending.count
            return nil
        }
        let line = Array(pending[..<newline])
        pending.removeSubrange(...newline)
        scanned = 0
        return line
    }
}
