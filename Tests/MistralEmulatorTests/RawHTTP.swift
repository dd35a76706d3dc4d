import Basics
import Foundation
import JSON
import MistralEmulator

#if canImport(Glibc)
    import Glibc
#endif

/// A blocking loopback HTTP/1.1 client over a plain socket: the tests need to see exactly what
/// went over the wire (chunks, resets, stalls), which a full client would hide.
final class RawConnection {
    private let fd: Int32
    private(set) var received: [UInt8] = []

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var address = Loopback.address(port: UInt16(port))
        let result = Loopback.withSockaddr(&address) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        guard result == 0 else {
            Glibc.close(fd)
            throw POSIXError(.ECONNREFUSED)
        }
    }

    deinit { Glibc.close(fd) }

    func send(_ text: String) {
        var bytes = Array(text.utf8)
        while !bytes.isEmpty {
            let sent = Glibc.send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL))
            if sent <= 0 { return }
            bytes.removeFirst(sent)
        }
    }

    func sendRequest(
        method: String = "POST", path: String, body: String? = nil, apiKey: String? = "test-key", close: Bool = true
    ) {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if let apiKey { text += "Authorization: Bearer \(apiKey)\r\n" }
        if close { text += "Connection: close\r\n" }
        if let body { text += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n" }
        text += "\r\n" + (body ?? "")
        send(text)
    }

    enum ReadEnd: Equatable { case closed, reset, timedOut, matched }

    /// Reads until `predicate` holds for everything received, the peer closes, or `timeout` passes.
    @discardableResult
    func read(timeout: Duration = .seconds(10), until predicate: ([UInt8]) -> Bool = { _ in false }) -> ReadEnd {
        let deadline = ContinuousClock.now + timeout
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            if predicate(received) { return .matched }
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { return .timedOut }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let milliseconds = Int32(
                max(1, remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000))
            guard poll(&poller, 1, milliseconds) > 0 else { continue }
            let count = recv(fd, &buffer, buffer.count, 0)
            if count == 0 { return .closed }
            if count < 0 { return errno == ECONNRESET ? .reset : .closed }
            received.append(contentsOf: buffer[0..<count])
        }
    }

    var text: String { String(decoding: received, as: UTF8.self) }

    func contains(_ needle: String) -> Bool { text.contains(needle) }
}

/// A parsed response, its chunked body decoded.
struct RawResponse {
    var status: Int
    var headers: [(name: String, value: String)]
    var body: [UInt8]
    /// The body as the server's HTTP chunks, each one of its writes; nil when it was not chunked.
    var chunks: [[UInt8]]?

    init?(_ bytes: [UInt8]) {
        let separator = Array("\r\n\r\n".utf8)
        guard let end = bytes.indices.first(where: { bytes[$0...].starts(with: separator) }) else { return nil }
        let lines = String(decoding: bytes[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { return nil }
        self.status = status
        headers = lines.dropFirst().compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (
                name: String(line[..<colon]),
                value: line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            )
        }
        let rest = Array(bytes[(end + 4)...])
        let chunked = headers.contains { $0.name.lowercased() == "transfer-encoding" && $0.value == "chunked" }
        chunks = chunked ? Self.dechunk(rest) : nil
        body = chunks.map { $0.flatMap { $0 } } ?? rest
    }

    func header(_ name: String) -> String? { headers.first { $0.name.lowercased() == name.lowercased() }?.value }

    var text: String { String(decoding: body, as: UTF8.self) }

    var json: JSONValue? { try? JSONParser.parse(bytes: body) }

    /// The data lines of an SSE body, with their `event:` names.
    var events: [(event: String?, data: String)] {
        text.components(separatedBy: "\n\n").compactMap { block in
            var event: String?
            var data: String?
            for line in block.components(separatedBy: "\n") {
                if line.hasPrefix("event: ") { event = String(line.dropFirst(7)) }
                if line.hasPrefix("data: ") { data = String(line.dropFirst(6)) }
            }
            return data.map { (event, $0) }
        }
    }

    static func dechunk(_ bytes: [UInt8]) -> [[UInt8]] {
        var output: [[UInt8]] = []
        var index = 0
        while index < bytes.count {
            guard let lineEnd = bytes[index...].indices.first(where: { bytes[$0] == UInt8(ascii: "\r") }),
                let size = Int(String(decoding: bytes[index..<lineEnd], as: UTF8.self), radix: 16)
            else { break }
            let start = lineEnd + 2
            if size == 0 { break }
            output.append(Array(bytes[start..<min(bytes.count, start + size)]))
            index = start + size + 2
        }
        return output
    }
}

/// Runs `body` against a fresh emulator that requires the key `test-key`.
func withEmulator(
    strictToolAfterUser: Bool = true, streamWrites: EmulatorConfiguration.StreamWrites = .perEvent,
    _ body: (MistralEmulatorServer) async throws -> Void
) async throws {
    let server = try await MistralEmulatorServer.start(
        EmulatorConfiguration(
            port: 0, apiKey: "test-key", strictToolAfterUser: strictToolAfterUser, streamWrites: streamWrites))
    do {
        try await body(server)
    } catch {
        try await server.shutdown()
        throw error
    }
    try await server.shutdown()
}

extension MistralEmulatorServer {
    /// One request on its own connection, read to the end.
    func send(_ path: String, _ body: String?, method: String = "POST", apiKey: String? = "test-key") throws
        -> RawResponse
    {
        let connection = try RawConnection(port: port)
        connection.sendRequest(method: method, path: path, body: body, apiKey: apiKey)
        connection.read()
        guard let response = RawResponse(connection.received) else { throw POSIXError(.EBADMSG) }
        return response
    }

    func send(_ path: String, json: JSONValue) throws -> RawResponse {
        try send(path, json.jsonText)
    }

    /// Polls the stats until `condition` holds (the server updates them on its own threads).
    func waitForStats(_ condition: (EmulatorStats) -> Bool) async -> EmulatorStats {
        for _ in 0..<200 {
            let current = stats()
            if condition(current) { return current }
            try? await Task.sleep(for: .milliseconds(25))
        }
        return stats()
    }
}
