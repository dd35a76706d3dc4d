internal import CSystemd
import Glibc

/// Talks to the service manager through `$NOTIFY_SOCKET` (sd_notify(3)).
///
/// Without `NOTIFY_SOCKET` every call is a no-op, so the daemon runs the same way by hand and
/// under systemd.
public struct SystemdNotifier: Sendable {
    public init() {}

    /// True when a service manager is listening.
    public var isEnabled: Bool { getenv("NOTIFY_SOCKET") != nil }

    /// Sends `READY=1` with a human status line.
    public func ready(status: String) {
        send(["READY=1", "STATUS=\(status)"])
    }

    /// Sends `RELOADING=1` with `MONOTONIC_USEC`, as systemd 253+ expects for reloads and
    /// older versions ignore harmlessly.
    public func reloading() {
        send(["RELOADING=1", "MONOTONIC_USEC=\(Self.monotonicMicroseconds())", "STATUS=Reloading agent definitions"])
    }

    public func stopping(status: String) {
        send(["STOPPING=1", "STATUS=\(status)"])
    }

    public func watchdog() {
        send(["WATCHDOG=1"])
    }

    /// The watchdog interval systemd asks for (`WATCHDOG_USEC`, for this pid), if any.
    public var watchdogInterval: Duration? {
        var microseconds: UInt64 = 0
        guard sd_watchdog_enabled(0, &microseconds) > 0, microseconds > 0 else { return nil }
        return .microseconds(Int64(microseconds))
    }

    /// Newlines inside a value would start a new assignment; they are flattened.
    private func send(_ assignments: [String]) {
        guard isEnabled else { return }
        let message = assignments.map { $0.replacing("\n", with: " ") }.joined(separator: "\n")
        _ = sd_notify(0, message)
    }

    static func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
    }
}
