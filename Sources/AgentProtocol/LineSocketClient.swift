import Basics
import Glibc
import JSON

/// A failure of `LineSocketClient`, with the socket path and the system error behind it.
public struct LineSocketError: Error, Sendable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        /// The socket could not be reached: no such file, refused, not permitted, path too long.
        case connect
        case send
        case receive
        /// The peer sent a line that is not JSON.
        case malformedLine
    }

    public var code: Code
    public var path: String
    /// The `errno` behind the failure; 0 when there was none (e.g. a malformed line).
    public var errno: Int32
    public var detail: String

    public init(_ code: Code, path: String, errno: Int32 = 0, detail: String? = nil) {
        self.code = code
        self.path = path
        self.errno = errno
        self.detail = detail ?? String(cString: strerror(errno))
    }

    public var description: String {
        switch code {
        case .connect: "cannot connect to \(path): \(detail)"
        case .send: "cannot send to \(path): \(detail)"
        case .receive: "cannot read from \(path): \(detail)"
        case .malformedLine: "\(path) sent a line that is not JSON: \(detail)"
        }
    }
}

/// A blocking client for the line-JSON protocol of CONTRACT §4 on a Unix socket: one JSON
/// value per line in both directions. agentctl's side of the wire; one thread uses it.
public final class LineSocketClient {
    public let path: String
    private let descriptor: Int32
    private var lines = LineBuffer()

    /// Connects to the Unix socket at `path`.
    public init(path: String) throws(LineSocketError) {
        self.path = path
        descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw LineSocketError(.connect, path: path, errno: Glibc.errno) }
        let result: Int32
        do {
            result = try UnixSocketAddress.with(path) { connect(descriptor, $0, $1) }
        } catch {
            close(descriptor)
            throw LineSocketError(.connect, path: path, errno: ENAMETOOLONG)
        }
        guard result == 0 else {
            let error = Glibc.errno
            close(descriptor)
            throw LineSocketError(.connect, path: path, errno: error)
        }
    }

    deinit { close(descriptor) }

    /// The socket, for a caller that waits on it together with other descriptors (poll(2)).
    public var fileDescriptor: Int32 { descriptor }

    /// A line already received but not yet returned, without reading: a caller that polls
    /// `fileDescriptor` takes these first, since poll cannot see them.
    public func bufferedLine() -> [UInt8]? { lines.nextLine() }

    /// Sends `value` as one line.
    public func send(_ value: JSONValue) throws(LineSocketError) {
        var bytes: [UInt8] = []
        value.write(to: &bytes)
        bytes.append(UInt8(ascii: "\n"))
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                if Glibc.errno == EINTR { continue }
                throw LineSocketError(.send, path: path, errno: Glibc.errno)
            }
            offset += written
        }
    }

    /// The next line as received, without its newline; nil once the peer has closed the connection.
    public func nextLine() throws(LineSocketError) -> [UInt8]? {
        while true {
            if let line = lines.nextLine() { return line }
            var buffer = [UInt8](repeating: 0, count: 65536)
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count < 0 {
                if Glibc.errno == EINTR { continue }
                throw LineSocketError(.receive, path: path, errno: Glibc.errno)
            }
            if count == 0 { return nil }
            lines.append(buffer[0..<count])
        }
    }

    /// The next line parsed as JSON, with its raw bytes; nil once the peer has closed the connection.
    public func nextValue() throws(LineSocketError) -> (value: JSONValue, line: [UInt8])? {
        guard let line = try nextLine() else { return nil }
        do {
            return (try JSONParser.parse(bytes: line), line)
        } catch {
            throw LineSocketError(.malformedLine, path: path, detail: error.description)
        }
    }
}
