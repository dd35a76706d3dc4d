import Glibc
import JSON
import Logging
import Subprocess

/// Runs exec tools as owned child processes (contract §9; STYLE habit 9).
///
/// Each call is one child in its own process group, with only the tool's `env` plus
/// `PATH=/usr/bin:/bin`, the arguments as one JSON line on stdin, stdout kept up to
/// `max_output`, stderr handed line by line to the caller (for the journal). It ends in one of
/// three ways, each leaving nothing behind: the child exits; `timeout` elapses; or the calling
/// task is cancelled (a client cancel, a disconnect, shutdown). In the last two the group gets
/// SIGTERM, then SIGKILL 2 s later if anything in it still lives, and the child is reaped.
///
/// Calls are independent: one runner serves any number of concurrent calls.
public struct ExecToolRunner: Sendable {
    /// Receives one line of a tool's stderr, newline removed, already capped (see
    /// ``StderrLineSplitter``). Called from the task reading the pipe: it must not block.
    public typealias StderrLineHandler = @Sendable (String) -> Void

    /// The grace between SIGTERM and SIGKILL, the contract's "SIGKILL 2 s later".
    static let killGrace: Duration = .seconds(2)
    /// The only variable a tool gets beyond its `env`: enough to find coreutils, and the
    /// same on every machine so a tool does not work only where agentd's own PATH happens to.
    static let toolPath = "/usr/bin:/bin"

    private let stderrLine: StderrLineHandler

    /// - Parameter stderrLine: where each line of every call's stderr goes.
    public init(stderrLine: @escaping StderrLineHandler) {
        Self.ignoreBrokenPipe
        self.stderrLine = stderrLine
    }

    /// Sends each stderr line to `logger` at `notice`, as the metadata field `tool.stderr` under
    /// a constant message, so the journal can be searched for them. Give `logger` the tool's
    /// and request's metadata (`tool`, `request.id`) to say whose line it is.
    public init(logger: Logger) {
        self.init { line in
            logger.notice("tool stderr", metadata: ["tool.stderr": "\(line)"])
        }
    }

    /// Runs one call and returns when its process has been reaped; never throws, never traps.
    ///
    /// - Parameters:
    ///   - arguments: the call's arguments as the model sent them (parsed); anything but an
    ///     object is a failed call.
    ///   - defaultCwd: the working directory when the tool names none (the daemon's state
    ///     directory).
    public func run(_ tool: ExecTool, arguments: JSONValue, defaultCwd: String) async -> ToolOutcome {
        let clock = ContinuousClock()
        let start = clock.now
        guard let arguments = arguments.objectValue else {
            return .notRun("arguments are \(arguments.typeName), not an object", duration: clock.now - start)
        }
        let argv: [String]
        switch ArgvTemplate.substitute(tool.argv, arguments: arguments) {
        case .success(let substituted): argv = substituted
        case .failure(let error): return .notRun(error.description, duration: clock.now - start)
        }
        guard let executable = argv.first else {
            return .notRun(ExecToolProblem(.emptyArgv).description, duration: clock.now - start)
        }
        guard !Task.isCancelled else { return .notRun("cancelled", duration: clock.now - start) }

        var environment = tool.env
        if environment["PATH"] == nil { environment["PATH"] = Self.toolPath }
        var platformOptions = PlatformOptions()
        // 0: a new group led by the child, so that one signal reaches whatever it starts.
        platformOptions.processGroupID = 0
        // Run by swift-subprocess when the task running the child is cancelled, which is how
        // both the timeout and the caller's cancellation end a call. toProcessGroup makes the
        // final SIGKILL, which the sequence always ends with, go to the group as well.
        platformOptions.teardownSequence = [
            .gracefulShutDown(toProcessGroup: true, allowedDurationToNextStep: Self.killGrace)
        ]
        let configuration = Configuration(
            executable: .path(.init(executable)),
            arguments: Arguments(Array(argv.dropFirst())),
            // The [Key: String] form: the [[UInt8]] one is handed to strdup as it is, so each
            // entry would have to carry its own NUL terminator.
            environment: .custom(
                Dictionary(uniqueKeysWithValues: environment.map { (Environment.Key(stringLiteral: $0.key), $0.value) })
            ),
            workingDirectory: .init(tool.cwd ?? defaultCwd),
            platformOptions: platformOptions
        )
        var stdinLine: [UInt8] = []
        JSONValue.object(arguments).write(to: &stdinLine)
        stdinLine.append(UInt8(ascii: "\n"))

        let ending = await runWithTimeout(configuration, stdinLine: stdinLine, maxOutput: tool.maxOutput, tool.timeout)
        let duration = clock.now - start
        return Self.outcome(of: ending, executable: executable, timeout: tool.timeout, duration: duration)
    }

    /// How a child's run ended, before it is worded for the model.
    private enum Ending: Sendable {
        case reaped(TerminationStatus, CappedOutput, timedOut: Bool, cancelled: Bool)
        case failedToRun(any Error)
    }

    /// Races the child against `timeout`. At the timeout, the task running the child is
    /// cancelled, which runs the teardown sequence (SIGTERM to the group, SIGKILL 2 s later);
    /// the caller's cancellation reaches that task the same way, through the task group.
    private func runWithTimeout(
        _ configuration: Configuration,
        stdinLine: [UInt8],
        maxOutput: Int,
        _ timeout: Duration
    ) async -> Ending {
        enum Finished: Sendable {
            case child(Result<(TerminationStatus, ProcessIdentifier, CappedOutput), any Error>)
            case timeoutElapsed
            case timerCancelled
        }
        let stderrLine = self.stderrLine
        return await withTaskGroup(of: Finished.self) { group in
            group.addTask {
                do {
                    let result = try await Subprocess.run(
                        configuration, input: .inputWriter, output: .sequence, error: .sequence
                    ) { execution in
                        try await Self.exchange(
                            with: execution, stdinLine: stdinLine, maxOutput: maxOutput, stderrLine: stderrLine)
                    }
                    return .child(.success((result.terminationStatus, result.processIdentifier, result.closureResult)))
                } catch {
                    return .child(.failure(error))
                }
            }
            group.addTask {
                do {
                    try await Task.sleep(for: timeout)
                    return .timeoutElapsed
                } catch {
                    return .timerCancelled
                }
            }
            var timedOut = false
            // When swift-subprocess's teardown sent the group SIGTERM (about when the child's
            // task was cancelled), from which the grace for leftovers in the group counts.
            var teardownStart: ContinuousClock.Instant?
            while let finished = await group.next() {
                switch finished {
                case .timeoutElapsed:
                    timedOut = true
                    teardownStart = .now
                    group.cancelAll()
                case .timerCancelled:
                    // The caller's cancellation, unless the child finished first.
                    if Task.isCancelled { teardownStart = .now }
                case .child(.success(let (status, processIdentifier, output))):
                    let cancelled = Task.isCancelled
                    group.cancelAll()
                    await Self.endLeftovers(inGroupOf: processIdentifier.value, signalledAt: teardownStart)
                    return .reaped(status, output, timedOut: timedOut, cancelled: cancelled)
                case .child(.failure(let error)):
                    group.cancelAll()
                    return .failedToRun(error)
                }
            }
            preconditionFailure("the child task always finishes the group")
        }
    }

    /// Feeds stdin and drains stdout and stderr concurrently, so no pipe can fill and block the
    /// child whatever order it uses them in; returns the kept stdout once both outputs end.
    ///
    /// swift-subprocess ends these reads when the child exits even if a grandchild still holds
    /// a pipe open, and when the task is cancelled; so this returns in either case, and the
    /// run then waits for the child to be reaped.
    private static func exchange(
        with execution: Execution<CustomWriteInput, SequenceOutput, SequenceOutput>,
        stdinLine: [UInt8],
        maxOutput: Int,
        stderrLine: @escaping StderrLineHandler
    ) async throws -> CappedOutput {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                // A tool need not read its stdin: if it exits or closes stdin first, the write
                // fails (EPIPE) and that is no failure of the call.
                _ = try? await execution.standardInputWriter.write(stdinLine)
                try? await execution.standardInputWriter.finish()
            }
            group.addTask {
                var splitter = StderrLineSplitter()
                for try await buffer in execution.standardError {
                    buffer.withUnsafeBytes { splitter.feed($0, emit: stderrLine) }
                }
                splitter.finish(emit: stderrLine)
            }
            var output = CappedOutput(limit: maxOutput)
            for try await buffer in execution.standardOutput {
                buffer.withUnsafeBytes { output.append($0) }
            }
            try await group.waitForAll()
            return output
        }
    }

    /// Ends whatever is left in the child's process group once the child is reaped, the same
    /// way as the child: SIGTERM, then SIGKILL when the 2 s grace is over. A background
    /// process the tool did not wait for has no owner but us; and a grandchild that was sent
    /// SIGTERM with the group gets its whole grace even when the child itself died at once.
    ///
    /// swift-subprocess's teardown stops at the child's exit, and 1.0.2 offers no hook between
    /// that exit and the reap, so this runs after the reap. It cannot signal a stranger: Linux
    /// keeps a process group's id allocated while any member lives, so while members are left
    /// the id is theirs; once none are, signals find no group (ESRCH), since a new process
    /// could take the id only after the kernel's pid counter wrapped all the way round.
    ///
    /// - Parameter signalledAt: when the teardown sent the group SIGTERM; `nil` when the child
    ///   exited by itself, and then the leftovers get their SIGTERM now.
    private static func endLeftovers(inGroupOf groupID: pid_t, signalledAt: ContinuousClock.Instant?) async {
        guard kill(-groupID, 0) == 0 else { return }
        if signalledAt == nil { _ = kill(-groupID, SIGTERM) }
        let deadline = (signalledAt ?? .now) + killGrace
        // In a task of its own: the caller's cancellation must not cut the grace short, nor
        // turn the polling sleep into a busy loop.
        await Task {
            while ContinuousClock.now < deadline {
                guard kill(-groupID, 0) == 0 else { return }
                try? await Task.sleep(for: .milliseconds(50))
            }
            _ = kill(-groupID, SIGKILL)
        }.value
    }

    private static func outcome(
        of ending: Ending,
        executable: String,
        timeout: Duration,
        duration: Duration
    ) -> ToolOutcome {
        switch ending {
        case .failedToRun(let error):
            return .notRun("could not run \(executable): \(error)", duration: duration)
        case .reaped(let terminationStatus, let output, let timedOut, let cancelled):
            let exitStatus: ToolOutcome.ExitStatus
            switch terminationStatus {
            case .exited(let code): exitStatus = .exited(code)
            case .signaled(let signal): exitStatus = .signalled(signal)
            }
            let failureReason: String?
            if timedOut {
                failureReason = "timed out after \(timeout.agentFileSpelling), \(exitStatus)"
            } else if cancelled {
                failureReason = "cancelled"
            } else if exitStatus != .exited(0) {
                failureReason = "\(exitStatus)"
            } else {
                failureReason = nil
            }
            var text = output.text
            if let failureReason {
                if !text.isEmpty && !text.hasSuffix("\n") { text += "\n" }
                text += "[\(failureReason)]"
            }
            return ToolOutcome(
                ok: failureReason == nil,
                output: text,
                failureReason: failureReason,
                exitStatus: exitStatus,
                duration: duration,
                outputCut: output.isCut
            )
        }
    }

    /// Ignores SIGPIPE in agentd, once, before the first tool runs.
    ///
    /// swift-subprocess 1.0.2 writes stdin with plain write(2) and leaves SIGPIPE alone, so a
    /// tool that exits without reading its stdin would otherwise kill agentd itself. Children
    /// are unaffected: swift-subprocess resets every signal to its default in the child.
    private static let ignoreBrokenPipe: Void = {
        _ = signal(SIGPIPE, SIG_IGN)
    }()
}
