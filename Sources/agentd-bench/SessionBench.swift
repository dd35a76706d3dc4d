import Basics
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Time to first text, in milliseconds, of one request at a time, three kinds interleaved.
struct SessionFigures {
    /// `{"input"}` alone.
    var stateless: [Double] = []
    /// The same 50 turns as the session holds, sent by the client in `messages`.
    var statelessWithHistory: [Double] = []
    /// `{"session","input"}` with a 50-turn history in the store.
    var session: [Double] = []
}

/// A blocking line-JSON connection to one Unix socket, for requests sent one at a time.
private final class LineConnection {
    private let descriptor: Int32
    private var pending: [UInt8] = []

    init(path: String) throws {
        descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        let connected = (try? UnixSocketAddress.with(path) { connect(descriptor, $0, $1) }) ?? -1
        guard connected == 0 else {
            close(descriptor)
            throw BenchError("cannot connect to \(path)")
        }
    }

    deinit { close(descriptor) }

    /// Sends `request` (one JSON object) and reads its events; returns the milliseconds from
    /// the send to the first `delta`, and the terminal event.
    func firstText(_ request: [String: Any]) throws -> (milliseconds: Double, terminal: [String: Any]) {
        var line = try JSONSerialization.data(withJSONObject: request)
        line.append(UInt8(ascii: "\n"))
        let sent = monotonicNanoseconds()
        _ = line.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var first: UInt64?
        while true {
            let event = try nextEvent()
            switch event["type"] as? String {
            case "delta": first = first ?? monotonicNanoseconds()
            case "done", "error", "result":
                return (Double((first ?? monotonicNanoseconds()) - sent) / 1e6, event)
            default: continue
            }
        }
    }

    private func nextEvent() throws -> [String: Any] {
        while true {
            if let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Data(pending[..<newline])
                pending.removeSubrange(...newline)
                guard let event = try JSONSerialization.jsonObject(with: line) as? [String: Any] else {
                    throw BenchError("agentd sent a line that is not an object")
                }
                return event
            }
            var buffer = [UInt8](repeating: 0, count: 65536)
            let count = recv(descriptor, &buffer, buffer.count, 0)
            guard count > 0 else { throw BenchError("agentd closed the connection") }
            pending += buffer[0..<count]
        }
    }
}

extension Bench {
    /// For work on sessions: only the session phase, its table printed.
    func sessionsOnly() throws {
        let (emulator, port) = try startEmulator()
        defer { emulator.stop() }
        var results = Results(machine: .current(swiftVersion: ""), plan: plan, quick: quick)
        try measureSessions(port: port, into: &results)
        print(Report(results: results).sessions)
    }

    /// What a session adds to the time to first text: a request continuing a 50-turn session
    /// against a stateless one, and against a stateless one carrying the same 50 turns itself
    /// (which isolates the store's read and append from the larger upstream body).
    func measureSessions(port: Int, into results: inout Results) throws {
        // max_messages 100 keeps the history at 50 turns (two messages each) as turns are added.
        let directory = try makeDaemonDirectory(
            "sessions", agents: ["bench": Self.benchAgent + "\nsessions: {max_messages: 100}\n"])
        let daemon = try DaemonUnderTest(
            binary: "\(binaries)/agentd", directory: directory, socketDir: "\(socketRoot)/sessions",
            emulatorPort: port, apiKey: Self.apiKey)
        defer { daemon.child.stop() }
        let connection = try LineConnection(path: daemon.socketPath("bench"))
        let words = "[words:\(plan.words)]"
        var history: [[String: Any]] = []
        for turn in 0..<50 {
            let input = "question \(turn) \(words)"
            let (_, done) = try connection.firstText(["session": "bench", "input": input])
            guard let text = done["text"] as? String else { throw BenchError("turn \(turn) failed: \(done)") }
            history += [["role": "user", "content": input], ["role": "assistant", "content": text]]
        }
        var figures = SessionFigures()
        let samples = plan.rounds * (quick ? 50 : 100)
        for index in 0..<samples {
            let input = "next \(index) \(words)"
            figures.stateless.append(try connection.firstText(["input": input]).milliseconds)
            figures.statelessWithHistory.append(
                try connection.firstText(["messages": history + [["role": "user", "content": input]]]).milliseconds)
            figures.session.append(try connection.firstText(["session": "bench", "input": input]).milliseconds)
        }
        results.sessions = figures
        progress(
            "sessions: first text p50 stateless \(fixed(percentile(figures.stateless, 0.5) ?? .nan, 3)) ms, "
                + "session \(fixed(percentile(figures.session, 0.5) ?? .nan, 3)) ms")
    }
}
