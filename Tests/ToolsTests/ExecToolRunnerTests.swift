import Glibc
import JSON
import Logging
import Synchronization
import Testing

@testable import Tools

/// Runs real child processes (coreutils; `/bin/sh` only as a deliberately awkward tool) and
/// checks what reached them and what came back.
///
/// Upper time bounds are very generous: under `swift test` with the whole package, on two
/// cores, a 1 s timeout was seen to end the call after 6.6 s (other suites keep the cores and
/// the cooperative pool busy). They only need to tell "ended by the timeout or the cancel" from
/// "ran to the end" (60 s); the exit status says which signal did it.
@Suite struct ExecToolRunnerTests {
    let runner = ExecToolRunner(stderrLine: { _ in })

    private func sh(_ script: String, _ arguments: String..., timeout: Duration = .seconds(60)) -> ExecTool {
        ExecTool(argv: ["/bin/sh", "-c", script, "sh"] + arguments, timeout: timeout)
    }

    // MARK: argv

    @Test func anArgumentReachesTheToolAsOneLiteralArgvElement() async {
        let hostile = "a b; rm -rf / $(id) `id` * \"q\" 'p' \\n"
        let tool = sh(#"printf '%s|' "$#" "$1""#, "{x}")
        let outcome = await runner.run(tool, arguments: ["x": .string(hostile)], defaultCwd: "/")
        #expect(outcome.ok)
        #expect(outcome.output == "1|\(hostile)|")
    }

    @Test func nonStringArgumentsAreSubstitutedAsCompactJSON() async {
        let tool = ExecTool(argv: ["/usr/bin/printf", #"%s\n"#, "{n}", "{o}", "{b}", "--n={n}"])
        let arguments: JSONValue = ["n": 3, "o": ["a": [1, true, nil]], "b": false]
        let outcome = await runner.run(tool, arguments: arguments, defaultCwd: "/")
        #expect(outcome.output == "3\n{\"a\":[1,true,null]}\nfalse\n--n={n}\n")
    }

    @Test func aMissingArgumentFailsTheCallWithoutRunningAnything() async {
        let directory = TemporaryDirectory()
        let marker = directory.path + "/ran"
        let tool = ExecTool(argv: ["/usr/bin/touch", marker, "{path}"])
        let outcome = await runner.run(tool, arguments: ["other": "x"], defaultCwd: "/")
        #expect(!outcome.ok)
        #expect(outcome.exitStatus == nil)
        #expect(outcome.output == #"missing argument "path" (exec[2] is "{path}")"#)
        #expect(ProcessProbe.readFile(marker) == nil)
    }

    @Test func argumentsThatAreNotAnObjectFailTheCall() async {
        let outcome = await runner.run(ExecTool(argv: ["/bin/true"]), arguments: .array([]), defaultCwd: "/")
        #expect(!outcome.ok)
        #expect(outcome.output == "arguments are array, not an object")
    }

    // MARK: stdin, environment, working directory

    @Test func stdinCarriesTheArgumentsAsOneJSONLineAndThenEnds() async {
        // cat ends only when stdin is closed, and prints exactly what arrived.
        let arguments: JSONValue = ["path": "/var", "depth": 2, "tags": ["a", "b"]]
        let outcome = await runner.run(ExecTool(argv: ["/bin/cat"]), arguments: arguments, defaultCwd: "/")
        #expect(outcome.ok)
        #expect(outcome.output == #"{"path":"/var","depth":2,"tags":["a","b"]}"# + "\n")
    }

    @Test func aToolThatClosesItsStdinUnreadStillSucceeds() async {
        // 1 MiB does not fit the pipe, and the tool closes stdin and lives on: the write fails
        // with EPIPE, which must neither kill agentd (SIGPIPE) nor fail the call.
        let big = String(repeating: "x", count: 1 << 20)
        let tool = sh("exec 0<&-; /usr/bin/sleep 0.3")
        let outcome = await runner.run(tool, arguments: ["big": .string(big)], defaultCwd: "/")
        #expect(outcome.ok)
        #expect(outcome.exitStatus == .exited(0))
    }

    @Test func theEnvironmentIsExactlyEnvPlusPath() async {
        let tool = ExecTool(argv: ["/usr/bin/env"], env: ["LANG": "C.UTF-8", "A_1": "x y=z"])
        let outcome = await runner.run(tool, arguments: [:], defaultCwd: "/")
        let lines = Set(outcome.output.split(separator: "\n").map(String.init))
        #expect(lines == ["LANG=C.UTF-8", "A_1=x y=z", "PATH=/usr/bin:/bin"])
    }

    @Test func theWorkingDirectoryIsTheToolsOrTheDefault() async {
        let directory = TemporaryDirectory()
        let byDefault = await runner.run(ExecTool(argv: ["/bin/pwd"]), arguments: [:], defaultCwd: directory.path)
        #expect(byDefault.output == directory.path + "\n")
        let named = await runner.run(
            ExecTool(argv: ["/bin/pwd"], cwd: "/usr"), arguments: [:], defaultCwd: directory.path)
        #expect(named.output == "/usr\n")
    }

    @Test func theChildLeadsItsOwnProcessGroupAndDoesNotInheritIgnoredSIGPIPE() async {
        // Field 5 of /proc/PID/stat is the process group. agentd ignores SIGPIPE (so that a tool
        // not reading its stdin cannot kill it); the child must get the default back, or a
        // pipeline inside a tool would no longer end when its reader does.
        let sigpipeBit: UInt64 = 1 << (UInt64(SIGPIPE) - 1)
        let ourMask = Self.ignoredSignals(in: ProcessProbe.readFile("/proc/self/status"))
        #expect(ourMask.map { $0 & sigpipeBit != 0 } == true)
        let tool = sh(#"echo $$; cut -d' ' -f5 /proc/$$/stat; cat /proc/$$/status"#)
        let outcome = await runner.run(tool, arguments: [:], defaultCwd: "/")
        let lines = outcome.output.split(separator: "\n").map(String.init)
        #expect(lines.count > 2)
        #expect(lines.first == lines.dropFirst().first)
        #expect(lines.first != "\(getpgrp())")
        let childMask = Self.ignoredSignals(in: outcome.output)
        #expect(childMask.map { $0 & sigpipeBit == 0 } == true)
    }

    /// The `SigIgn:` mask of a /proc/PID/status text.
    private static func ignoredSignals(in status: String?) -> UInt64? {
        let line = status?.split(separator: "\n").first { $0.hasPrefix("SigIgn:") }
        return line.flatMap { UInt64($0.dropFirst("SigIgn:".count).trimmingPrefix("\t"), radix: 16) }
    }

    // MARK: exit status and output

    @Test func aNonZeroExitFailsTheCallAndKeepsTheOutput() async {
        let outcome = await runner.run(sh("echo partial; exit 3"), arguments: [:], defaultCwd: "/")
        #expect(!outcome.ok)
        #expect(outcome.exitStatus == .exited(3))
        #expect(outcome.failureReason == "exit status 3")
        #expect(outcome.output == "partial\n[exit status 3]")
    }

    @Test func tenMebibytesOfOutputAreCutAtMaxOutputWithoutBlockingTheChild() async {
        // A blocked head would run into the timeout: long, for a busy machine.
        let tool = ExecTool(
            argv: ["/usr/bin/head", "-c", "10485760", "/dev/zero"], timeout: .seconds(120), maxOutput: 64 * 1024)
        let outcome = await runner.run(tool, arguments: [:], defaultCwd: "/")
        // head wrote all 10 MiB and exited 0, before the timeout: the pipe was drained
        // past the cap, neither left full nor closed.
        #expect(outcome.ok)
        #expect(outcome.exitStatus == .exited(0))
        #expect(outcome.outputCut)
        let marker = "\n[output cut at 65536 bytes]"
        #expect(outcome.output.hasSuffix(marker))
        #expect(outcome.output.utf8.count == 65536 + marker.utf8.count)
        // Well under a second alone; the bound allows for a machine busy with other suites.
        #expect(outcome.duration < .seconds(60))
    }

    @Test func outputIsDecodedAsUTF8WithInvalidBytesRepaired() async {
        let invalid = await runner.run(
            ExecTool(argv: ["/usr/bin/printf", #"a\377b"#]), arguments: [:], defaultCwd: "/")
        #expect(invalid.output == "a\u{FFFD}b")
        // "é" is two bytes: a cut after three leaves half of the second, which is dropped.
        let split = await runner.run(
            ExecTool(argv: ["/usr/bin/printf", "éé"], maxOutput: 3), arguments: [:], defaultCwd: "/")
        #expect(split.output == "é\n[output cut at 3 bytes]")
        #expect(split.outputCut)
    }

    @Test func stderrLinesReachTheHandlerCapped() async {
        let lines = Mutex<[String]>([])
        let collecting = ExecToolRunner(stderrLine: { line in lines.withLock { $0.append(line) } })
        let tool = sh(#"echo one >&2; printf 'two\nthree' >&2; printf '%05000d\n' 0 >&2; echo out"#)
        let outcome = await collecting.run(tool, arguments: [:], defaultCwd: "/")
        #expect(outcome.output == "out\n")
        let seen = lines.withLock { $0 }
        #expect(seen.count == 3)
        #expect(seen.prefix(2) == ["one", "two"])
        #expect(seen.last == "three" + String(repeating: "0", count: 4096 - 5) + " [line cut at 4096 bytes]")
    }

    @Test func aStderrFloodIsCutPerCallAndDoesNotBlockTheChild() async {
        let lines = Mutex<[String]>([])
        let collecting = ExecToolRunner(stderrLine: { line in lines.withLock { $0.append(line) } })
        // 1 MiB of 1 KiB lines on stderr; the tool exits 0 only if every write went through.
        let flood = sh(#"/usr/bin/head -c 1048576 /dev/zero | /usr/bin/tr '\0' 'e' | /usr/bin/fold -w 1023 >&2"#)
        let outcome = await collecting.run(flood, arguments: [:], defaultCwd: "/")
        #expect(outcome.ok)
        let seen = lines.withLock { $0 }
        #expect(seen.last == "[stderr cut at 65536 bytes]")
        #expect(seen.dropLast().reduce(0) { $0 + $1.utf8.count } <= 65536)
        #expect(seen.count == 65536 / 1023 + 1)
    }

    // MARK: failures to start

    @Test func anExecutableThatCannotBeStartedFailsTheCall() async {
        let missing = await runner.run(ExecTool(argv: ["/nonexistent/tool"]), arguments: [:], defaultCwd: "/")
        #expect(!missing.ok)
        #expect(missing.exitStatus == nil)
        #expect(missing.output.hasPrefix("could not run /nonexistent/tool: "))

        let directory = TemporaryDirectory()
        let notExecutable = directory.path + "/tool"
        ProcessProbe.writeFile(notExecutable, "#!/bin/sh\n", mode: 0o644)
        let denied = await runner.run(ExecTool(argv: [notExecutable]), arguments: [:], defaultCwd: "/")
        #expect(!denied.ok)
        #expect(denied.output.hasPrefix("could not run \(notExecutable): "))

        let noCwd = await runner.run(
            ExecTool(argv: ["/bin/true"], cwd: "/nonexistent"), arguments: [:], defaultCwd: "/")
        #expect(!noCwd.ok)
        #expect(noCwd.output.hasPrefix("could not run /bin/true: "))
    }

    // MARK: timeout, cancellation, leftovers

    @Test func aTimeoutEndsTheToolWithSIGTERM() async {
        let tool = ExecTool(argv: ["/usr/bin/sleep", "60"], timeout: .seconds(1))
        let outcome = await runner.run(tool, arguments: [:], defaultCwd: "/")
        #expect(!outcome.ok)
        #expect(outcome.exitStatus == .signalled(SIGTERM))
        #expect(outcome.failureReason == "timed out after 1s, killed by SIGTERM")
        #expect(outcome.output == "[timed out after 1s, killed by SIGTERM]")
        #expect(outcome.duration >= .milliseconds(950))
        #expect(outcome.duration < .seconds(30))
    }

    @Test func aToolIgnoringSIGTERMIsKilledWithItsGroupTwoSecondsLater() async throws {
        // sh and its background sleep both ignore SIGTERM (the disposition is inherited).
        let tool = sh(#"trap '' TERM; /usr/bin/sleep 60 & echo $$ $!; wait"#, timeout: .seconds(1))
        let outcome = await runner.run(tool, arguments: [:], defaultCwd: "/")
        #expect(outcome.exitStatus == .signalled(SIGKILL))
        #expect(outcome.failureReason == "timed out after 1s, killed by SIGKILL")
        // Expected about 3 s: 1 s to the timeout, then the 2 s grace.
        #expect(outcome.duration >= .milliseconds(2900))
        #expect(outcome.duration < .seconds(30))
        let pids = ProcessProbe.numbers(in: outcome.output)
        try #require(pids.count == 2)
        #expect(ProcessProbe.isReaped(pids[0]))
        #expect(await ProcessProbe.waitUntilDead(pids[1]))
    }

    @Test func theTimeoutSendsSIGTERMToGrandchildrenToo() async {
        // The grandchild has a TERM handler that leaves a mark: it must be asked to stop, not
        // only swept up with SIGKILL once the tool is gone.
        let directory = TemporaryDirectory()
        let markFile = directory.path + "/mark"
        let grandchild = #"trap 'echo TERM >> "$0"; exit 0' TERM; /usr/bin/sleep 60 & wait"#
        let tool = sh(#"/bin/sh -c "$1" "$2" & wait"#, "{script}", "{mark}", timeout: .seconds(1))
        let outcome = await runner.run(
            tool, arguments: ["script": .string(grandchild), "mark": .string(markFile)], defaultCwd: "/")
        #expect(outcome.failureReason == "timed out after 1s, killed by SIGTERM")
        let deadline = ContinuousClock.now + .seconds(10)
        while ProcessProbe.readFile(markFile) == nil, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        #expect(ProcessProbe.readFile(markFile) == "TERM\n")
    }

    @Test func cancellingTheCallingTaskEndsTheProcessGroup() async throws {
        let directory = TemporaryDirectory()
        let pidFile = directory.path + "/pids"
        let tool = sh(#"/usr/bin/sleep 60 & echo $$ $! > "$1"; wait"#, "{file}")
        let call = Task { await runner.run(tool, arguments: ["file": .string(pidFile)], defaultCwd: "/") }
        var pids: [pid_t] = []
        let deadline = ContinuousClock.now + .seconds(30)
        while pids.count < 2, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
            pids = ProcessProbe.numbers(in: ProcessProbe.readFile(pidFile) ?? "")
        }
        try #require(pids.count == 2)
        let cancelled = ContinuousClock.now
        call.cancel()
        let outcome = await call.value
        // Expected at once: sh and sleep die of the SIGTERM.
        #expect(ContinuousClock.now - cancelled < .seconds(30))
        #expect(!outcome.ok)
        #expect(outcome.failureReason == "cancelled")
        #expect(outcome.exitStatus == .signalled(SIGTERM))
        #expect(ProcessProbe.isReaped(pids[0]))
        #expect(await ProcessProbe.waitUntilDead(pids[1]))
    }

    @Test func aCallInAnAlreadyCancelledTaskStartsNothing() async {
        let directory = TemporaryDirectory()
        let marker = directory.path + "/ran"
        let call = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await runner.run(ExecTool(argv: ["/usr/bin/touch", marker]), arguments: [:], defaultCwd: "/")
        }
        let outcome = await call.value
        #expect(outcome.output == "cancelled")
        #expect(outcome.exitStatus == nil)
        #expect(ProcessProbe.readFile(marker) == nil)
    }

    @Test func aBackgroundProcessLeftByAToolThatExitedIsKilled() async throws {
        // The sleep keeps the tool's stdout open: the call must still end when sh does.
        let tool = sh(#"/usr/bin/sleep 60 & echo $$ $!"#)
        let outcome = await runner.run(tool, arguments: [:], defaultCwd: "/")
        #expect(outcome.ok)
        #expect(outcome.duration < .seconds(30))
        let pids = ProcessProbe.numbers(in: outcome.output)
        try #require(pids.count == 2)
        #expect(ProcessProbe.isReaped(pids[0]))
        #expect(await ProcessProbe.waitUntilDead(pids[1]))
    }

    @Test func aLeftoverIgnoringSIGTERMIsKilledAfterTheGrace() async throws {
        let tool = sh(#"(trap '' TERM; exec /usr/bin/sleep 60) & echo $!"#)
        let outcome = await runner.run(tool, arguments: [:], defaultCwd: "/")
        #expect(outcome.ok)
        #expect(outcome.duration >= .milliseconds(1900))
        #expect(outcome.duration < .seconds(30))
        let pids = ProcessProbe.numbers(in: outcome.output)
        try #require(pids.count == 1)
        #expect(await ProcessProbe.waitUntilDead(pids[0]))
    }

    @Test func twoCallsRunConcurrently() async {
        // A rendezvous rather than a stopwatch: each tool announces itself, then waits (up to
        // 60 s) for the other's announcement. Run one after the other, the first would wait in
        // vain and exit 1; and no load on the machine can make concurrent calls miss each other.
        let directory = TemporaryDirectory()
        let rendezvous = sh(
            #"echo > "$1"; i=0; while [ ! -e "$2" ]; do i=$((i+1)); [ $i -gt 1200 ] && exit 1; sleep 0.05; done"#,
            "{mine}", "{other}", timeout: .seconds(90))
        let (first, second) = (directory.path + "/a", directory.path + "/b")
        let outcomes = await withTaskGroup(of: ToolOutcome.self) { group in
            for (mine, other) in [(first, second), (second, first)] {
                group.addTask {
                    await runner.run(
                        rendezvous, arguments: ["mine": .string(mine), "other": .string(other)], defaultCwd: "/")
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outcomes.map(\.ok) == [true, true])
    }
}

/// Keeps what is logged, for checking where the stderr of a tool goes.
private struct RecordingLogHandler: LogHandler {
    struct Entry: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata
    }

    /// Shared by the copies that `Logger` makes of its handler.
    final class Record: Sendable {
        let entries = Mutex<[Entry]>([])
    }

    let record: Record
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        record.entries.withLock { $0.append(Entry(level: event.level, message: "\(event.message)", metadata: merged)) }
    }
}

@Suite struct ExecToolRunnerLoggingTests {
    @Test func stderrLinesAreLoggedAsDataUnderAConstantMessage() async {
        let record = RecordingLogHandler.Record()
        var logger = Logger(label: "test") { _ in RecordingLogHandler(record: record) }
        logger[metadataKey: "tool"] = "disk_free"
        let runner = ExecToolRunner(logger: logger)
        let tool = ExecTool(argv: ["/bin/sh", "-c", "echo 'no such mount' >&2; exit 1"])
        let outcome = await runner.run(tool, arguments: [:], defaultCwd: "/")
        #expect(outcome.failureReason == "exit status 1")
        let logged = record.entries.withLock { $0 }
        #expect(logged.map(\.message) == ["tool stderr"])
        #expect(logged.first?.level == .notice)
        #expect(logged.first?.metadata["tool.stderr"] == "no such mount")
        #expect(logged.first?.metadata["tool"] == "disk_free")
    }
}
