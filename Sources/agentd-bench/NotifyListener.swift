import Basics

#if canImport(Glibc)
    import Glibc
#endif

/// The `NOTIFY_SOCKET` the bench hands to agentd: a datagram socket whose messages are
/// timestamped as they are read, so READY=1 is timed to the moment it arrives.
final class NotifyListener {
    let path: String
    private let descriptor: Int32

    init(path: String) throws {
        self.path = path
        unlink(path)
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        let bound = try UnixSocketAddress.with(path) { bind(descriptor, $0, $1) }
        guard bound == 0 else { throw BenchError("cannot bind \(path): \(String(cString: strerror(errno)))") }
    }

    deinit {
        close(descriptor)
        unlink(path)
    }

    /// Reads messages until one has a line equal to `line` (e.g. "READY=1"); returns the monotonic
    /// time it arrived, nil after `seconds`.
    func wait(for line: String, within seconds: Double) -> UInt64? {
        let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let now = monotonicNanoseconds()
            guard now < deadline else { return nil }
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, Int32(min((deadline - now) / 1_000_000 + 1, 1000))) > 0 else { continue }
            let count = recv(descriptor, &buffer, buffer.count, 0)
            let arrived = monotonicNanoseconds()
            guard count > 0 else { continue }
            let message = String(decoding: buffer[0..<count], as: UTF8.self)
            if message.split(separator: "\n").contains(where: { $0 == line }) { return arrived }
        }
    }

    /// Discards messages already queued.
    func drain() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while recv(descriptor, &buffer, buffer.count, Int32(MSG_DONTWAIT)) > 0 {}
    }
}

/// A failure of the bench itself (not a measured figure).
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
