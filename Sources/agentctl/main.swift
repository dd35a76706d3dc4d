import AgentCore
import ArgumentParser
import Glibc

/// `agentctl`: talks to a running agentd, or checks agent files offline (CONTRACT §7).
struct Agentctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agentctl",
        abstract: "Control agentd and check agent definitions.",
        discussion: """
            agentctl talks to agentd's control socket, <socket-dir>/control.sock (--socket-dir, \
            else $AGENTD_SOCKET_DIR, else /run/agentd). Tables are for people; --json prints what \
            the daemon sent. Colour only on a terminal and when NO_COLOR is unset.

            Exit status: 0 ok, 1 the request failed, 64 usage error, 65 invalid agent files \
            (validate), 69 agentd not reachable.

            Shell completions: agentctl --generate-completion-script bash|zsh|fish
            """,
        version: BuildInfo.version,
        subcommands: [
            List.self, Status.self, Reload.self, Chat.self, Sessions.self, Session.self, Validate.self, Metrics.self,
        ])

    @OptionGroup var connection: ConnectionOptions

    /// Maps failures to the exit codes of CONTRACT §7; help, version and completion scripts
    /// go through ArgumentParser as usual.
    static func main() {
        unblockTerminatingSignals()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as AgentctlError {
            Output.failure(error.message)
            Glibc.exit(error.exitCode.rawValue)
        } catch {
            // Parse and validation errors exit with EX_USAGE whatever the library's default is.
            guard exitCode(for: error) == .validationFailure else { exit(withError: error) }
            Output.error(fullMessage(for: error))
            Glibc.exit(AgentctlExit.usage.rawValue)
        }
    }
}

/// A parent may hand its children blocked signals (Foundation's Process passes its own mask
/// on); Ctrl-C and `kill` must still stop agentctl mid-stream.
private func unblockTerminatingSignals() {
    var signals = sigset_t()
    sigemptyset(&signals)
    for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] { sigaddset(&signals, signal) }
    sigprocmask(SIG_UNBLOCK, &signals, nil)
}

Agentctl.main()
