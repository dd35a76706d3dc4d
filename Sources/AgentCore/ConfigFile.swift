import YAML

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reading a configuration file: bounded, symlinks followed, every failure a diagnostic.
enum ConfigFile {
    /// Agent files and the daemon config are hand-written; anything bigger is a mistake.
    static let maxBytes = 1 << 20

    enum ReadError: Error {
        case missing
        case failed(String)
    }

    /// The file's bytes. Symlinks are followed, so `agents.d/x.yaml -> ../shared/x.yaml` works.
    static func contents(of path: String) throws(ReadError) -> [UInt8] {
        // O_NONBLOCK: a FIFO named by mistake must not hang the daemon at start.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if fd < 0, errno == ENOENT { throw .missing }
        try check(fd, "cannot open")
        defer { close(fd) }
        var info = stat()
        try check(fstat(fd, &info), "cannot stat")
        if (info.st_mode & S_IFMT) == S_IFDIR { throw .failed("is a directory, expected a YAML file") }
        if (info.st_mode & S_IFMT) == S_IFREG, Int(info.st_size) > maxBytes {
            throw .failed(tooLarge(Int(info.st_size)))
        }
        // Also bounded while reading: the size may change, and devices report none.
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            try check(count < 0 ? -1 : 0, "cannot read")
            if count == 0 { return bytes }
            bytes += chunk[..<count]
            if bytes.count > maxBytes { throw .failed(tooLarge(nil)) }
        }
    }

    private static func tooLarge(_ size: Int?) -> String {
        let actual = size.map { " (\($0) bytes)" } ?? ""
        return "file is larger than 1 MiB\(actual); configuration files are expected to be small"
    }

    /// The one place `-1`/`errno` results of the file calls become errors.
    private static func check(_ result: Int32, _ what: String) throws(ReadError) {
        guard result < 0 else { return }
        throw .failed("\(what) file: \(String(cString: strerror(errno)))")
    }

    /// The file parsed as YAML, or the reason it could not be, as diagnostics of `file`.
    /// `nil` (with no diagnostics) means the file holds no document.
    static func parse(_ bytes: [UInt8], file: String) -> Result<YAMLNode?, DiagnosticList> {
        do {
            return .success(try YAMLParser.parse(bytes: bytes))
        } catch {
            return .failure(
                DiagnosticList([
                    Diagnostic(file: file, line: error.mark.line, column: error.mark.column, message: error.message)
                ]))
        }
    }
}
