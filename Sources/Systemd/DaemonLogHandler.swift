internal import CSystemd
import Glibc
import Logging

/// Where log records go: the journal with priorities and fields when stderr is the journal
/// (`$JOURNAL_STREAM` names stderr's device and inode), plain lines on stderr otherwise.
public enum LogDestination: Sendable {
    case journal
    case stderr

    /// The journal when systemd connected our stderr to it, stderr otherwise.
    public static var current: LogDestination { stderrIsJournal ? .journal : .stderr }

    public static var stderrIsJournal: Bool {
        guard let value = getenv("JOURNAL_STREAM").map({ String(cString: $0) }) else { return false }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var status = stat()
        guard fstat(STDERR_FILENO, &status) == 0 else { return false }
        return UInt64(status.st_dev) == device && UInt64(status.st_ino) == inode
    }

    /// Bootstraps swift-log once for the process.
    public static func bootstrap(level: Logger.Level, identifier: String) {
        let destination = current
        LoggingSystem.bootstrap { _ in
            var handler = DaemonLogHandler(identifier: identifier, destination: destination)
            handler.logLevel = level
            return handler
        }
    }
}

/// One record per journal entry, with `PRIORITY=`, `SYSLOG_IDENTIFIER=` and the metadata as
/// upper-case fields (`agent` → `AGENT=`, `request.id` → `REQUEST_ID=`); or one plain line per
/// record on stderr: `identifier: level: message key=value ...`.
public struct DaemonLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let identifier: String
    let destination: LogDestination

    public init(identifier: String, destination: LogDestination) {
        self.identifier = identifier
        self.destination = destination
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 })
        switch destination {
        case .journal: sendToJournal(event, metadata: merged)
        case .stderr: writeLine(event, metadata: merged)
        }
    }

    private func sendToJournal(_ event: LogEvent, metadata: Logger.Metadata) {
        var fields = [
            "MESSAGE=\(event.message)", "PRIORITY=\(Self.priority(event.level))", "SYSLOG_IDENTIFIER=\(identifier)",
        ]
        for (key, value) in metadata {
            fields.append("\(Self.fieldName(key))=\(value)")
        }
        // sd_journal_sendv takes binary-safe fields, so values may hold newlines.
        let copies = fields.map { strdup($0)! }
        defer { copies.forEach { free($0) } }
        var vectors = copies.map { iovec(iov_base: UnsafeMutableRawPointer($0), iov_len: strlen($0)) }
        _ = sd_journal_sendv(&vectors, Int32(vectors.count))
    }

    private func writeLine(_ event: LogEvent, metadata: Logger.Metadata) {
        var line = "\(identifier): \(event.level.rawValue): \(event.message)"
        for key in metadata.keys.sorted() {
            line += " \(key)=\(metadata[key]!)"
        }
        line += "\n"
        // One write(2) per line keeps lines from concurrent tasks whole.
        _ = line.utf8.withContiguousStorageIfAvailable { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }

    /// syslog priorities: journalctl -p filters on these.
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// Journal field names are upper-case letters, digits and underscores.
    static func fieldName(_ key: String) -> String {
        String(key.uppercased().map { $0.isLetter || $0.isNumber ? $0 : "_" })
    }
}
