import Glibc

/// A path too long for `sun_path` (108 bytes on Linux, the terminating NUL included).
public struct UnixPathTooLong: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var capacity: Int

    public var description: String {
        "path is \(path.utf8.count) bytes; Unix socket paths must be under \(capacity)"
    }
}

/// Builds the `sockaddr_un` for bind(2), connect(2) and sendto(2) on a Unix socket path.
public enum UnixSocketAddress {
    /// Calls `body` with the address of `path` and its length.
    public static func with<Result>(
        _ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) throws -> Result
    ) throws -> Result {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        let bytes = Array(path.utf8)
        guard bytes.count < capacity else { throw UnixPathTooLong(path: path, capacity: capacity) }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            buffer.copyBytes(from: bytes)
            buffer[bytes.count] = 0
        }
        return try withUnsafePointer(to: &address) {
            try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                try body($0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
    }
}
