import AgentProtocol
import Glibc
import JSON

/// `agentctl chat AGENT` with no TEXT on a terminal (contract §7): a prompt per turn, every
/// turn in one session for the chat's lifetime, replies streamed to stdout as they arrive.
/// Ctrl-C while a reply streams cancels that reply (`{"cancel":ID}`) and the chat goes on;
/// Ctrl-D on an empty line ends it.
struct InteractiveChat {
    let connection: DaemonSession
    /// The request's fixed members: `command`/`agent` on the control socket, `options`, `stream`.
    let base: JSONObject
    let session: String
    let json: Bool

    func run() throws(AgentctlError) {
        guard let terminal = RawTerminal() else {
            throw AgentctlError(exitCode: AgentctlExit.usage, message: "standard input is not a usable terminal")
        }
        defer { terminal.restore() }
        let style = Style(descriptor: STDERR_FILENO)
        Output.error(style.dim("session \(session); Ctrl-C cancels a reply, Ctrl-D ends"))
        var editor = LineEditor(prompt: style.bold("> "))
        var turn: Int64 = 0
        while case .line(let text) = editor.read() {
            guard !text.allSatisfy(\.isWhitespace) else { continue }
            turn += 1
            var request = base
            request["id"] = .int(turn)
            request["session"] = .string(session)
            request["input"] = .string(text)
            try ask(.object(request), id: .int(turn), style: style)
        }
    }

    /// Sends one turn and prints its events up to its terminal one, watching the keyboard
    /// meanwhile: the terminal sends Ctrl-C as a byte, since the raw mode turned signals off.
    /// A failed turn is reported and the chat goes on; a lost connection ends it.
    private func ask(_ request: JSONValue, id: JSONValue, style: Style) throws(AgentctlError) {
        let client = connection.client
        var printer = ReplyPrinter(json: json)
        defer { printer.finish() }
        var cancelSent = false
        let cancel = { () throws in
            guard !cancelSent else { return }
            cancelSent = true
            try client.send(["cancel": id])
        }
        do {
            try client.send(request)
            while true {
                guard let line = try client.bufferedLine() ?? nextLine(client, onCtrlC: cancel) else { continue }
                guard let value = try? JSONParser.parse(bytes: line), let event = ReceivedEvent(value),
                    event.id?.json == id
                else { continue }
                printer.handle(event, line: line)
                if case .error(let info) = event.kind {
                    printer.finish()
                    Output.error(info.code == .cancelled ? style.dim("(cancelled)") : style.red("error: \(info)"))
                }
                if event.isTerminal { return }
            }
        } catch let error as AgentctlError {
            throw error
        } catch {
            throw .requestFailed("\(error)")
        }
    }

    /// Waits for the socket or the keyboard: a line from the socket, or nil after handling a key.
    private func nextLine(_ client: LineSocketClient, onCtrlC: () throws -> Void) throws -> [UInt8]? {
        var descriptors = [
            pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0),
            pollfd(fd: client.fileDescriptor, events: Int16(POLLIN), revents: 0),
        ]
        guard poll(&descriptors, 2, -1) > 0 else { return nil }
        if descriptors[0].revents != 0 {
            var byte: UInt8 = 0
            if read(STDIN_FILENO, &byte, 1) == 1, byte == 0x03 { try onCtrlC() }
        }
        guard descriptors[1].revents != 0 else { return nil }
        guard let line = try client.nextLine() else {
            throw AgentctlError.requestFailed("agentd closed the connection to \(client.path)")
        }
        return line
    }
}
