import Basics
import Glibc

/// A failure to create, bind or inspect a socket, with the path and errno.
public struct SocketError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String

    public var description: String { "\(path): \(message)" }

    init(_ path: String, _ operation: String, errno code: Int32 = errno) {
        self.path = path
        self.message = "\(operation): \(String(cString: strerror(code)))"
    }

    init(_ path: String, message: String) {
        self.path = path
        self.message = message
    }
}

/// Creates listening Unix stream sockets with their final mode and group from the first
/// moment they are visible.
///
/// The socket is bound inside a fresh 0700 directory beside its final path, given its mode and
/// group there, then renamed into place: no client can connect while it has wider permissions.
enum UnixSocket {
    static let backlog: Int32 = 1024

    /// A bound, listening socket and the inode of its file, to tell later whether the file at
    /// the path is still ours.
    struct Bound: Sendable {
        var descriptor: Int32
        var inode: UInt64
    }

    /// Returns a listening descriptor bound to `path`.
    ///
    /// A socket file already at `path` is replaced when nobody accepts on it (left by a crash)
    /// and refused when something does (another agentd).
    static func listen(path: String, mode: UInt32, group: gid_t?) throws(SocketError) -> Bound {
        try removeStaleSocket(at: path)
        let directory = parentDirectory(of: path)
        var template = Array("\(directory)/.b-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw SocketError(path, "creating a private bind directory") }
        let privateDirectory = String(
            decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        defer { rmdir(privateDirectory) }
        let temporaryPath = privateDirectory + "/s"

        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw SocketError(path, "socket") }
        do throws(SocketError) {
            try bind(descriptor, to: temporaryPath, reportingAs: path)
            guard chmod(temporaryPath, mode_t(mode)) == 0 else { throw SocketError(path, "chmod") }
            if let group, chown(temporaryPath, uid_t.max, group) != 0 {
                throw SocketError(path, "chown to group \(group)")
            }
            guard rename(temporaryPath, path) == 0 else { throw SocketError(path, "rename into place") }
            var status = stat()
            guard Glibc.listen(descriptor, backlog) == 0, lstat(path, &status) == 0 else {
                unlink(path)
                throw SocketError(path, "listen")
            }
            return Bound(descriptor: descriptor, inode: UInt64(status.st_ino))
        } catch {
            // Whatever step failed, the private directory must end up empty for its rmdir.
            unlink(temporaryPath)
            close(descriptor)
            throw error
        }
    }

    /// True when a process accepts connections on the socket at `path`.
    static func isLive(path: String) -> Bool {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        return (try? withAddress(path) { connect(descriptor, $0, $1) == 0 }) ?? false
    }

    /// Removes the socket file at `path` if it is still the one bound with `inode`: after a
    /// rebind or a second daemon's start, it is not ours to remove.
    static func remove(path: String, inode: UInt64) {
        var status = stat()
        guard lstat(path, &status) == 0, UInt64(status.st_ino) == inode else { return }
        unlink(path)
    }

    static func removeStaleSocket(at path: String) throws(SocketError) {
        var status = stat()
        guard lstat(path, &status) == 0 else { return }
        guard status.st_mode & S_IFMT == S_IFSOCK else {
            throw SocketError(path, message: "exists and is not a socket; refusing to replace it")
        }
        if isLive(path: path) {
            throw SocketError(path, message: "another process (another agentd?) is accepting connections on it")
        }
        guard unlink(path) == 0 || errno == ENOENT else { throw SocketError(path, "removing stale socket") }
    }

    private static func bind(_ descriptor: Int32, to path: String, reportingAs finalPath: String) throws(SocketError) {
        let bound = try withAddress(path) { Glibc.bind(descriptor, $0, $1) == 0 }
        guard bound else { throw SocketError(finalPath, "bind") }
    }

    /// Calls `body` with a `sockaddr_un` for `path`, rejecting paths longer than `sun_path`.
    private static func withAddress<Result>(
        _ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Result
    ) throws(SocketError) -> Result {
        do {
            return try UnixSocketAddress.with(path, body)
        } catch {
            throw SocketError(path, message: "\(error)")
        }
    }

    static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
