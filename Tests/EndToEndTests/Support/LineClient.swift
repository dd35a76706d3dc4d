import AgentProtocol
import Basics
import Glibc
import JSON

/// A line-JSON client on a Unix socket, as socat or nc would be.
final class LineClient: @unchecked Sendable {
    let descriptor: Int32
    private var lines = LineBuffer()

    init(path: String) throws {
        descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        let result = withUnixAddress(path) { connect(descriptor, $0, $1) }
        guard result == 0 else {
            let message = String(cString: strerror(errno))
            close(descriptor)
            throw TestFailure("connect \(path): \(message)")
        }
    }

    deinit { close(descriptor) }

    func send(raw bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if written <= 0 { return }
            offset += written
        }
    }

    func send(_ line: String) { send(raw: Array((line + "\n").utf8)) }

    func send(_ value: JSONValue) { send(value.jsonText) }

    /// Closes the writing half, like socat after its input ends.
    func shutdownWrite() { shutdown(descriptor, Int32(SHUT_WR)) }

    /// The next event line, parsed; nil on timeout or end of stream.
    func next(within seconds: Double = 10) -> JSONValue? {
        let deadline = monotonicNow() + seconds * 1000
        while true {
            if let line = lines.nextLine() { return try? JSONParser.parse(bytes: line) }
            let remaining = deadline - monotonicNow()
            guard remaining > 0 else { return nil }
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, Int32(min(remaining, 1000))) > 0 else { continue }
            var buffer = [UInt8](repeating: 0, count: 65536)
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count <= 0 { return nil }
            lines.append(buffer[0..<count])
        }
    }

    /// Events until the terminal event for `id` (inclusive).
    func events(until id: JSONValue, within seconds: Double = 15) -> [JSONValue] {
        var events: [JSONValue] = []
        let deadline = monotonicNow() + seconds * 1000
        while monotonicNow() < deadline, let event = next(within: (deadline - monotonicNow()) / 1000) {
            events.append(event)
            if event["id"] == id, ReceivedEvent(event)?.isTerminal == true { break }
        }
        return events
    }

    /// One request, its events through the terminal one.
    func request(_ value: JSONValue) -> [JSONValue] {
        send(value)
        return events(until: value["id"] ?? .null)
    }

    /// True once the daemon has closed the connection.
    func isClosedByPeer(within seconds: Double = 5) -> Bool {
        let deadline = monotonicNow() + seconds * 1000
        while monotonicNow() < deadline {
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 50) > 0 else { continue }
            var buffer = [UInt8](repeating: 0, count: 65536)
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count <= 0 { return true }
            lines.append(buffer[0..<count])
        }
        return false
    }
}
