import Glibc

/// What the tests need to see about processes and files, without Foundation.
enum ProcessProbe {
    /// Whether `pid` names no process at all: reaped, not even a zombie.
    static func isReaped(_ pid: pid_t) -> Bool {
        kill(pid, 0) == -1 && errno == ESRCH
    }

    /// Whether `pid` is dead: gone, or a zombie. A grandchild killed with its group is
    /// reparented to PID 1, which reaps it when it will (in a container, perhaps never);
    /// either way it runs no more.
    static func isDead(_ pid: pid_t) -> Bool {
        guard let stat = readFile("/proc/\(pid)/stat") else { return true }
        // The state is the field after the parenthesised command name, which may hold spaces.
        guard let close = stat.utf8.lastIndex(of: UInt8(ascii: ")")) else { return true }
        let state = stat.utf8[close...].dropFirst(2).first
        return state == UInt8(ascii: "Z") || state == UInt8(ascii: "X")
    }

    /// Polls until `pid` is dead, for at most `limit`: signals and reparenting take a moment.
    static func waitUntilDead(_ pid: pid_t, within limit: Duration = .seconds(10)) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if isDead(pid) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return isDead(pid)
    }

    /// The whole-number words of `text`, e.g. pids a tool printed.
    static func numbers(in text: String) -> [pid_t] {
        text.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { pid_t($0) }
    }

    static func readFile(_ path: String) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else { break }
            bytes.append(contentsOf: chunk.prefix(count))
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func writeFile(_ path: String, _ text: String, mode: mode_t = 0o644) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        precondition(descriptor >= 0, "cannot create \(path)")
        defer { close(descriptor) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        precondition(written == bytes.count, "short write to \(path)")
    }
}

/// A fresh directory under /tmp with a short name, removed with the files in it at the end.
struct TemporaryDirectory: ~Copyable {
    let path: String

    init() {
        var template = Array("/tmp/tt-XXXXXX".utf8CString)
        precondition(mkdtemp(&template) != nil, "mkdtemp failed")
        path = String(decoding: template.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The tests put only plain files here, so one level is enough.
    deinit {
        if let directory = opendir(path) {
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { bytes in
                    String(decoding: bytes.prefix(while: { $0 != 0 }), as: UTF8.self)
                }
                if name != "." && name != ".." { unlink(path + "/" + name) }
            }
            closedir(directory)
        }
        rmdir(path)
    }
}
