import Glibc

/// Plain blocking calls to 127.0.0.1, for the tests and the bench, which talk to the daemon's
/// and the emulator's HTTP listeners without an HTTP client.
public enum Loopback {
    /// A TCP port nothing listens on now: bound to 0, read back, released. The next listener
    /// started will usually find it free.
    public static func unusedPort() -> UInt16? {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = address(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withSockaddr(&address) {
            bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0
        }
        return bound ? UInt16(bigEndian: address.sin_port) : nil
    }

    /// 127.0.0.1:`port` (0: any free port, for bind(2)).
    public static func address(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    /// Calls `body` with `address` as the `sockaddr` that bind(2), connect(2) and
    /// getsockname(2) take (its length is `MemoryLayout<sockaddr_in>.size`).
    public static func withSockaddr<Result>(
        _ address: inout sockaddr_in, _ body: (UnsafeMutablePointer<sockaddr>) -> Result
    ) -> Result {
        withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1, body) }
    }

    /// `GET path` with `Connection: close`, read to the end (at most 5 s without a byte): the
    /// whole response, head and body; nil when the connection fails.
    public static func get(port: Int, path: String) -> [UInt8]? {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = address(port: UInt16(port))
        let connected = withSockaddr(&address) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        guard connected == 0 else { return nil }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count <= 0 { break }
            response += buffer[0..<count]
        }
        return response
    }
}
