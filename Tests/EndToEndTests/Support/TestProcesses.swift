import Basics
import Foundation
import Glibc
import JSON

/// The directory holding the built products: the test runner sits beside them.
let productsDirectory: String = {
    let executable =
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var directory = (executable as NSString).deletingLastPathComponent
    // On some toolchains the runner lives inside an .xctest bundle directory.
    while directory.hasSuffix(".xctest") || directory.contains(".xctest/") {
        directory = (directory as NSString).deletingLastPathComponent
    }
    return directory
}()

/// The repository root, for the shipped agents.d.
let repositoryRoot: String = {
    var path = #filePath
    for _ in 0..<4 { path = (path as NSString).deletingLastPathComponent }
    return path
}()

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A short temporary directory (Unix socket paths must stay under 108 bytes).
final class TemporaryDirectory: @unchecked Sendable {
    let path: String

    init() {
        var template = Array("/tmp/ad-XXXXXX".utf8CString)
        path = String(cString: mkdtemp(&template)!)
    }

    func write(_ name: String, _ contents: String) {
        let file = "\(path)/\(name)"
        try? FileManager.default.createDirectory(
            atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: file, contents: Data(contents.utf8))
    }

    func remove(_ name: String) {
        try? FileManager.default.removeItem(atPath: "\(path)/\(name)")
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Milliseconds since an arbitrary point, for deadlines in helpers.
func monotonicNow() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) * 1000 + Double(now.tv_nsec) / 1_000_000
}

/// Polls `condition` until it holds or `seconds` pass.
func eventually(within seconds: Double = 5, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = monotonicNow() + seconds * 1000
    while monotonicNow() < deadline {
        if try condition() { return true }
        usleep(10_000)
    }
    return try condition()
}

/// A child process with its stdout and stderr captured to files.
final class ChildProcess: @unchecked Sendable {
    let process = Process()
    let stdoutPath: String
    let stderrPath: String

    init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], logDirectory: String) throws
    {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for key in [
            "NOTIFY_SOCKET", "MISTRAL_API_KEY", "MISTRAL_BASE_URL", "CREDENTIALS_DIRECTORY", "JOURNAL_STREAM",
            "WATCHDOG_USEC", "WATCHDOG_PID",
        ] {
            env.removeValue(forKey: key)
        }
        env.merge(environment) { $1 }
        process.environment = env
        let name = (executable as NSString).lastPathComponent + "-\(UInt32.random(in: 0...UInt32.max))"
        stdoutPath = "\(logDirectory)/\(name).out"
        stderrPath = "\(logDirectory)/\(name).err"
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    func signal(_ number: Int32) { kill(pid, number) }

    /// The exit status, or nil if it did not exit within `seconds`.
    func waitForExit(within seconds: Double = 10) -> Int32? {
        guard eventually(within: seconds, { !process.isRunning }) else { return nil }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// The offline Mistral emulator, started as its binary on a free port.
final class Emulator: @unchecked Sendable {
    static let apiKey = "test-key-0123456789"
    let child: ChildProcess
    let baseURL: String

    init(directory: TemporaryDirectory) throws {
        let child = try ChildProcess(
            "\(productsDirectory)/mistral-emulator", ["--port", "0", "--api-key", Self.apiKey],
            logDirectory: directory.path)
        self.child = child
        var address: String?
        _ = eventually(within: 10) {
            let output = child.stdout
            guard let line = output.split(separator: "\n").first, output.contains("\n") else { return false }
            address = line.replacingOccurrences(of: "listening on ", with: "")
            return true
        }
        guard let address else { throw TestFailure("the emulator did not print its address: \(child.stderr)") }
        baseURL = "http://\(address)"
    }

    /// `GET /_emulator/stats`.
    func stats() throws -> JSONValue { try get("/_emulator/stats") }

    /// `GET /_emulator/last-request`: the body of the latest API request the emulator received.
    func lastRequest() throws -> JSONValue { try get("/_emulator/last-request") }

    /// A GET of one of the emulator's own JSON endpoints over a raw socket: no HTTP client needed.
    private func get(_ path: String) throws -> JSONValue {
        let hostPort = baseURL.replacingOccurrences(of: "http://", with: "").split(separator: ":")
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = Loopback.address(port: UInt16(hostPort[1])!)
        let connected = Loopback.withSockaddr(&address) {
            connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
        guard connected == 0 else { throw TestFailure("cannot reach the emulator") }
        let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        _ = request.withCString { send(descriptor, $0, strlen($0), 0) }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count <= 0 { break }
            response.append(contentsOf: buffer[0..<count])
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let body = text.components(separatedBy: "\r\n\r\n").last else {
            throw TestFailure("no body from \(path)")
        }
        return try JSONParser.parse(body)
    }

    var activeStreams: Int { (try? stats())?["active_streams"]?.intValue.map(Int.init) ?? -1 }
}

/// Calls `body` with a `sockaddr_un` for `path`, for bind(2) or connect(2); -1 for a path too long.
func withUnixAddress(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
    (try? UnixSocketAddress.with(path, body)) ?? -1
}

/// Leaves a socket file at `path` that nobody listens on, as a crashed daemon does.
func makeStaleSocket(at path: String) -> Bool {
    let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(descriptor) }
    return withUnixAddress(path) { bind(descriptor, $0, $1) } == 0
}
