import Foundation

#if canImport(Glibc)
    import Glibc
#endif

// agentd-bench --bin DIR [--quick] [--out BENCHMARKS.md]
// Measures what agentd adds on top of the upstream; see BENCHMARKS.md.

func benchMain() -> Int32 {
    var arguments = CommandLine.arguments.dropFirst()
    var binaries = ".build/release"
    var output: String?
    var soakSeconds: Double?
    var holdStreams: Int?
    var words: Int?
    var soakClients = 100
    var sessionsOnly = false
    var quick = ProcessInfo.processInfo.environment["BENCH_QUICK"].map { !$0.isEmpty && $0 != "0" } ?? false
    while let argument = arguments.popFirst() {
        switch argument {
        case "--bin": binaries = arguments.popFirst() ?? binaries
        case "--out": output = arguments.popFirst()
        case "--quick": quick = true
        case "--soak": soakSeconds = arguments.popFirst().flatMap { Double($0) }
        case "--hold": holdStreams = arguments.popFirst().flatMap { Int($0) }
        case "--words": words = arguments.popFirst().flatMap { Int($0) }
        case "--clients": soakClients = arguments.popFirst().flatMap { Int($0) } ?? soakClients
        case "--sessions": sessionsOnly = true
        default:
            FileHandle.standardError.write(
                Data(
                    "usage: agentd-bench [--bin DIR] [--quick] [--out FILE] [--soak SECONDS [--words N] [--clients N] | --hold STREAMS | --sessions]\n"
                        .utf8))
            return 64
        }
    }
    // Short, so socket paths stay under sun_path's 108 bytes.
    var template = Array("/tmp/agentd-bench.XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else {
        progress("cannot create a temporary directory")
        return 1
    }
    let workDirectory = String(cString: made)
    recordForCleanup("dir \(workDirectory)")
    defer { try? FileManager.default.removeItem(atPath: workDirectory) }
    var socketTemplate = Array("/dev/shm/agentd-bench.XXXXXX".utf8CString)
    let socketRoot = mkdtemp(&socketTemplate).map { String(cString: $0) } ?? workDirectory
    recordForCleanup("dir \(socketRoot)")
    defer { try? FileManager.default.removeItem(atPath: socketRoot) }
    do {
        var plan = quick ? Plan.quick : Plan.full
        if let words { plan.words = words }
        let bench = Bench(
            binaries: binaries, plan: plan, quick: quick, workDirectory: workDirectory,
            socketRoot: socketRoot)
        if let holdStreams {
            try bench.holdOnly(streams: holdStreams)
            return 0
        }
        if sessionsOnly {
            try bench.sessionsOnly()
            return 0
        }
        if let soakSeconds {
            try bench.soak(seconds: soakSeconds, clients: soakClients)
            return 0
        }
        let results = try bench.run(swiftVersion: ProcessInfo.processInfo.environment["BENCH_SWIFT_VERSION"] ?? "")
        let report = Report(results: results).markdown
        print(report)
        if let output { try Report.write(report, into: output) }
        return 0
    } catch {
        progress("failed: \(error)")
        return 1
    }
}

exit(benchMain())
