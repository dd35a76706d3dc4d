import Glibc
import Testing

@testable import Sessions

/// The two backends, so that each semantic test runs against both.
enum Backend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite, memory

    var testDescription: String { rawValue }
}

/// A fresh directory under /tmp, removed (with the database files in it) by `remove()`.
struct TemporaryDirectory: ~Copyable {
    let path: String

    init() {
        var template = Array("/tmp/agentd-sessions-XXXXXX".utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(created != nil, "mkdtemp: \(String(cString: strerror(errno)))")
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Removes the files in the directory and its subdirectories one level down, then itself.
    func remove() {
        removeTree(path)
    }

    private func removeTree(_ path: String) {
        if let directory = opendir(path) {
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) {
                    String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
                }
                guard name != ".", name != ".." else { continue }
                let child = path + "/" + name
                if unlink(child) != 0 { removeTree(child) }
            }
            closedir(directory)
        }
        rmdir(path)
    }

    var databasePath: String { path + "/" + SessionStore.fileName }
}

/// A store of the given backend in `directory`; an SQLite store must really be on disk.
func makeStore(_ backend: Backend, in directory: borrowing TemporaryDirectory) throws -> SessionStore {
    switch backend {
    case .sqlite:
        let store = SessionStore(stateDirectory: directory.path)
        try #require(store.backing == .file(path: directory.databasePath))
        return store
    case .memory:
        let store = SessionStore(stateDirectory: SessionStore.memoryStateDirectory)
        try #require(store.backing == .memory(fallbackReason: nil))
        return store
    }
}

extension SessionMessage {
    /// A JSON message whose text names it, so a test can say which message it expects.
    static func named(_ name: String, padding: Int = 0) -> SessionMessage {
        SessionMessage(json: #"{"m":"\#(name)"\#(String(repeating: " ", count: padding))}"#)
    }
}

/// Messages named `t<turn>.<index>` (`t2.0`, `t2.1`, ...), one turn.
func turn(_ number: Int, messages: Int) -> [SessionMessage] {
    (0..<messages).map { .named("t\(number).\($0)") }
}

/// A fixed point in time, so expiry and recency are exact.
let t0 = Timestamp(millisecondsSinceEpoch: 1_800_000_000_000)

/// Limits that never trim or evict, except where a test overrides one.
let roomy = SessionLimits(ttl: .seconds(3600), maxMessages: 1000, maxBytes: 1 << 20, maxSessions: 1000)

func key(_ name: String, agent: String = "helper", uid: UInt32 = 1000) -> SessionKey {
    SessionKey(agent: agent, uid: uid, name: name)
}

/// The whole file, or nil when it does not exist.
func contents(of path: String) -> [UInt8]? {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { return nil }
    defer { close(descriptor) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = read(descriptor, &buffer, buffer.count)
        guard count > 0 else { break }
        bytes += buffer[0..<count]
    }
    return bytes
}

func write(_ bytes: [UInt8], to path: String) throws {
    let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    try #require(descriptor >= 0)
    defer { close(descriptor) }
    try #require(Glibc.write(descriptor, bytes, bytes.count) == bytes.count)
}

extension [UInt8] {
    /// True when `text`'s UTF-8 bytes occur anywhere in these bytes.
    func contains(text: String) -> Bool {
        let needle = Array(text.utf8)
        guard needle.count <= count else { return false }
        return (0...(count - needle.count)).contains { start in
            self[start..<(start + needle.count)].elementsEqual(needle)
        }
    }
}

/// The permission bits of the file at `path`, or nil when it does not exist.
func mode(of path: String) -> mode_t? {
    var status = stat()
    guard stat(path, &status) == 0 else { return nil }
    return status.st_mode & 0o777
}
