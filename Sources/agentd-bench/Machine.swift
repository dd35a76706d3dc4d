import Basics
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The machine the figures were measured on.
struct Machine {
    var cores: Int
    var cpuModel: String
    var memory: String
    var kernel: String
    var swiftVersion: String
    var date: String
    /// /proc/loadavg's 1, 5 and 15 minute figures when the run began: other work on the machine.
    var loadAtStart: String
    var loadAtEnd = ""
    /// The machine is a virtual one on a shared host: time the hypervisor gave to other guests
    /// while this one had work is lost to every process here, and makes tails that no change
    /// to agentd moves.
    var cpuTimesAtStart = CPUTimes.current()
    var stolenDuringRun = ""

    static func current(swiftVersion: String) -> Machine {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model =
            cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        let meminfo = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? ""
        let kilobytes =
            meminfo.split(separator: "\n").first { $0.hasPrefix("MemTotal:") }
            .flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Double($0) } ?? .nan
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let formatter = ISO8601DateFormatter()
        return Machine(
            cores: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), cpuModel: model,
            memory: "\(fixed(kilobytes / 1024 / 1024, 1)) GiB", kernel: release,
            swiftVersion: swiftVersion.isEmpty ? "unknown" : swiftVersion, date: formatter.string(from: Date()),
            loadAtStart: loadAverage())
    }

    mutating func runEnded() {
        loadAtEnd = Self.loadAverage()
        if let start = cpuTimesAtStart, let end = CPUTimes.current(), end.total > start.total {
            stolenDuringRun = "\(fixed(Double(end.steal - start.steal) / Double(end.total - start.total) * 100, 1)) %"
        } else {
            stolenDuringRun = "n/a"
        }
    }

    static func loadAverage() -> String {
        let text = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? ""
        return text.split(separator: " ").prefix(3).joined(separator: " ")
    }

    var markdown: String {
        """
        | | |
        |---|---|
        | date | \(date) |
        | cores (nproc) | \(cores) |
        | CPU | \(cpuModel) |
        | memory | \(memory) |
        | kernel | \(kernel) |
        | swift | \(swiftVersion) |
        | load average (1, 5, 15 min) at start / end | \(loadAtStart) / \(loadAtEnd) |
        | CPU time stolen by the hypervisor during the run | \(stolenDuringRun) |
        """
    }
}

/// The first line of /proc/stat: clock ticks of all CPUs since boot.
struct CPUTimes {
    var total: UInt64
    var steal: UInt64

    static func current() -> CPUTimes? {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
            let line = text.split(separator: "\n").first, line.hasPrefix("cpu ")
        else { return nil }
        // user nice system idle iowait irq softirq steal guest guest_nice; guest time is
        // already counted in user and nice.
        let ticks = line.split(separator: " ").dropFirst().prefix(8).compactMap { UInt64($0) }
        guard ticks.count == 8 else { return nil }
        return CPUTimes(total: ticks.reduce(0, +), steal: ticks[7])
    }
}

/// `GET /_emulator/stats` over a plain blocking socket: the emulator's own count of open streams.
func emulatorStats(port: Int) -> String {
    guard let response = Loopback.get(port: port, path: "/_emulator/stats") else { return "unreachable" }
    let text = String(decoding: response, as: UTF8.self)
    guard let open = text.firstIndex(of: "{"), let close = text.lastIndex(of: "}") else { return "no answer" }
    return String(text[open...close])
}
