import AgentProtocol
import Basics
import Foundation
import Glibc
import JSON

/// What the events of many requests on one connection added up to.
struct TerminalTally {
    /// Terminal events (`done`, `error`, `result`) per id, in arrival order.
    var terminals: [JSONValue: [JSONValue]] = [:]
    /// Events that arrived for an id after its terminal event: must stay zero.
    var afterTerminal = 0
    /// Events without an id (e.g. a refusal of the connection).
    var anonymous: [JSONValue] = []

    var isExactlyOnce: Bool { afterTerminal == 0 && terminals.values.allSatisfy { $0.count == 1 } }

    /// The code of each terminal event: "done" or the error code.
    var outcomes: [String: Int] {
        var counts: [String: Int] = [:]
        for events in terminals.values {
            for event in events {
                counts[event["error"]?["code"]?.stringValue ?? event["type"]?.stringValue ?? "?", default: 0] += 1
            }
        }
        return counts
    }

    mutating func record(_ event: JSONValue) {
        guard let id = event["id"], id != .null else {
            anonymous.append(event)
            return
        }
        if terminals[id] != nil { afterTerminal += 1 }
        if ReceivedEvent(event)?.isTerminal == true { terminals[id, default: []].append(event) }
    }
}

/// How many of `events` are terminal (`done` or `error`).
func terminalCount(_ events: [JSONValue]) -> Int {
    events.filter { ReceivedEvent($0)?.isTerminal == true }.count
}

extension LineClient {
    /// Reads until `count` distinct ids have ended (or the stream ends or stalls for `within`
    /// seconds), then a short while longer to catch anything sent after a terminal event.
    func tally(count: Int, within seconds: Double = 60, into tally: inout TerminalTally) {
        let deadline = monotonicNow() + seconds * 1000
        while tally.terminals.count < count, monotonicNow() < deadline,
            let event = next(within: (deadline - monotonicNow()) / 1000)
        {
            tally.record(event)
        }
        while let event = next(within: 0.2) { tally.record(event) }
    }

    func tally(count: Int, within seconds: Double = 60) -> TerminalTally {
        var result = TerminalTally()
        tally(count: count, within: seconds, into: &result)
        return result
    }
}

/// A process's resident set size in KiB, from /proc/PID/status.
func residentKiB(of pid: Int32) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return nil }
    return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
}

/// A loopback TCP port that nothing listens on: bound, then closed again.
func closedLoopbackPort() -> UInt16 { Loopback.unusedPort() ?? 9 }

/// Runs `body` for each index on its own thread and waits for all of them: blocking socket
/// clients, as many as real concurrent programs.
func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    for index in 0..<count {
        group.enter()
        let thread = Thread {
            body(index)
            group.leave()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
    group.wait()
}

/// A value several threads add to.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<Result>(_ body: (inout Value) -> Result) -> Result {
        lock.withLock { body(&value) }
    }
}
