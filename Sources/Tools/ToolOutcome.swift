import Glibc

/// What one server-tool call came to: the result the model sees, and what the journal records.
///
/// A failing tool never ends a request (contract §9): every way a call can go wrong, from a
/// missing argument to a SIGKILL after the timeout, is an outcome with `ok == false` whose
/// `output` says what happened, never a thrown error.
public struct ToolOutcome: Sendable, Hashable {
    /// How the tool's process ended.
    public enum ExitStatus: Sendable, Hashable, CustomStringConvertible {
        case exited(Int32)
        case signalled(Int32)

        public var description: String {
            switch self {
            case .exited(let code): return "exit status \(code)"
            case .signalled(let signal): return "killed by \(ToolOutcome.signalName(signal))"
            }
        }
    }

    /// Whether the tool did its job: it exited with status 0, in time, uncancelled.
    public var ok: Bool
    /// What the model sees: the tool's stdout (ending in `[output cut at N bytes]` when it
    /// was cut) and, when `ok` is false, a last line in brackets saying why, e.g.
    /// `[exit status 3]` or `[timed out after 1s, killed by SIGKILL]`. When no process ran,
    /// only the reason.
    public var output: String
    /// Why the call failed, in a few words fit for a log field; `nil` when `ok`.
    public var failureReason: String?
    /// How the process ended; `nil` when none was started (a missing argument, an executable
    /// that could not be started, a call cancelled before it began).
    public var exitStatus: ExitStatus?
    /// From the start of the call until the process was reaped.
    public var duration: Duration
    /// Whether stdout went past `max_output` and was cut.
    public var outputCut: Bool

    public init(
        ok: Bool,
        output: String,
        failureReason: String?,
        exitStatus: ExitStatus?,
        duration: Duration,
        outputCut: Bool
    ) {
        self.ok = ok
        self.output = output
        self.failureReason = failureReason
        self.exitStatus = exitStatus
        self.duration = duration
        self.outputCut = outputCut
    }

    /// A call that failed before any process ran, e.g. a missing argument.
    static func notRun(_ reason: String, duration: Duration) -> ToolOutcome {
        ToolOutcome(
            ok: false, output: reason, failureReason: reason, exitStatus: nil, duration: duration, outputCut: false)
    }

    /// `SIGKILL` rather than `9`: the names are what people grep the journal for.
    static func signalName(_ signal: Int32) -> String {
        switch signal {
        case SIGHUP: return "SIGHUP"
        case SIGINT: return "SIGINT"
        case SIGQUIT: return "SIGQUIT"
        case SIGILL: return "SIGILL"
        case SIGABRT: return "SIGABRT"
        case SIGBUS: return "SIGBUS"
        case SIGFPE: return "SIGFPE"
        case SIGKILL: return "SIGKILL"
        case SIGSEGV: return "SIGSEGV"
        case SIGPIPE: return "SIGPIPE"
        case SIGALRM: return "SIGALRM"
        case SIGTERM: return "SIGTERM"
        case SIGXCPU: return "SIGXCPU"
        case SIGXFSZ: return "SIGXFSZ"
        default: return "signal \(signal)"
        }
    }
}

extension Duration {
    /// `1s`, `1.5s`, `250ms`: the spelling agent files use for durations.
    var agentFileSpelling: String {
        let milliseconds = components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
        if milliseconds % 1000 == 0 { return "\(milliseconds / 1000)s" }
        if milliseconds < 1000 { return "\(milliseconds)ms" }
        let tenths = milliseconds / 100
        return tenths * 100 == milliseconds ? "\(tenths / 10).\(tenths % 10)s" : "\(milliseconds)ms"
    }
}
