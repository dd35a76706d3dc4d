import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A process the bench started; `stop()` (also run by `deinit`) ends it, so nothing outlives the bench.
final class Child {
    let name: String
    let process = Process()
    let logPath: String

    /// Monotonic time just before exec: start-up figures are measured from here.
    private(set) var launchedAt: UInt64 = 0

    init(name: String, executable: String, arguments: [String], environment: [String: String], directory: String) throws
    {
        self.name = name
        logPath = "\(directory)/\(name).log"
        guard FileManager.default.createFile(atPath: logPath, contents: nil) else {
            throw BenchError("cannot create \(logPath)")
        }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        process.standardOutput = log
        process.standardError = log
        launchedAt = monotonicNanoseconds()
        try process.run()
        recordForCleanup("pid \(process.processIdentifier)")
    }

    var pid: Int32 { process.processIdentifier }

    func signal(_ number: Int32) { if process.isRunning { kill(pid, number) } }

    /// SIGTERM, then SIGKILL if it is still there after `grace` seconds.
    func stop(grace: Double = 10) {
        guard process.isRunning else { return }
        kill(pid, SIGTERM)
        let deadline = monotonicNanoseconds() + UInt64(grace * 1e9)
        while process.isRunning && monotonicNanoseconds() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit { stop(grace: 2) }

    /// The log so far (stdout and stderr together).
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Waits for a log line starting with `prefix`; returns the line.
    func waitForLine(startingWith prefix: String, within seconds: Double) -> String? {
        let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
        while monotonicNanoseconds() < deadline {
            if let line = log.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) { return String(line) }
            guard process.isRunning else { return nil }
            usleep(5_000)
        }
        return nil
    }

    /// Resident set size now, in bytes (VmRSS of /proc/PID/status).
    var residentBytes: Double { ProcessFigures.residentBytes(pid: pid) }

    /// User + system CPU seconds so far (/proc/PID/stat).
    var cpuSeconds: Double { ProcessFigures.cpuSeconds(pid: pid) }
}

/// Appends `entry` ("pid N" or "dir PATH") to `$BENCH_PIDFILE`, from which scripts/bench.sh
/// stops the processes and removes the directories an interrupted run left behind.
func recordForCleanup(_ entry: String) {
    guard let path = ProcessInfo.processInfo.environment["BENCH_PIDFILE"],
        let file = FileHandle(forWritingAtPath: path)
    else { return }
    file.seekToEndOfFile()
    file.write(Data("\(entry)\n".utf8))
    file.closeFile()
}

/// Figures read from /proc.
enum ProcessFigures {
    static func residentBytes(pid: Int32) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kilobytes = line.split(separator: " ").dropFirst().first.flatMap({ Double($0) })
        else { return .nan }
        return kilobytes * 1024
    }

    static func cpuSeconds(pid: Int32) -> Double {
        // Fields 14 and 15 (utime, stime) in clock ticks; the command name may hold spaces, so
        // count from after its closing parenthesis (field 3 is the first after it).
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return .nan }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return .nan }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// The pids of `pid`'s child processes (/proc/PID/task/*/children).
    static func children(of pid: Int32) -> [Int32] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.flatMap { task in
            ((try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/children", encoding: .utf8)) ?? "")
                .split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
    }

    /// This process's own user + system CPU seconds (the load generator's cost).
    static func ownCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }
}
