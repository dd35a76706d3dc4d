import AgentProtocol
import ArgumentParser
import Glibc
import JSON

struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send one message to an agent and print its reply as it streams.",
        discussion: """
            The request goes through agentd's control socket, so it works for every agent whatever \
            its socket's group; --socket talks to an agent socket directly instead. The model's \
            reasoning, its tool calls, built-in tool runs and sources are printed to stderr. Examples:
              agentctl chat support "Where is my order 42?"
              echo "Summarise this" | agentctl chat writer --option max_tokens=50
            """)

    @OptionGroup var connection: ConnectionOptions

    @Option(
        help: ArgumentHelp(
            "Talk to this agent socket directly instead of through the control socket; AGENT is then not checked.",
            valueName: "path"),
        completion: .file())
    var socket: String?

    @Option(
        help: ArgumentHelp(
            "Continue this session (^[A-Za-z0-9._:-]{1,128}$); agentd keeps its history.", valueName: "name"))
    var session: String?

    @Flag(help: "Print the event lines as they arrive, as JSON.") var json = false

    @Flag(help: "Ask for the whole reply at once (stream:false) and print it when done.") var noStream = false

    @Option(
        name: .customLong("option"),
        help: ArgumentHelp(
            "A per-request option, e.g. temperature=0.2, max_tokens=50, stop=END, tool_choice=auto (repeatable).",
            discussion: "The value is read as JSON when it parses as JSON, else as a string.", valueName: "key=value"))
    var options: [String] = []

    @Argument(help: "The agent's name.", completion: .custom(ConnectionOptions.completeAgentName))
    var agent: String

    @Argument(help: "The message; standard input (all of it) when absent.") var text: String?

    func validate() throws {
        _ = try requestOptions()
    }

    func run() throws {
        var request: JSONObject = [:]
        if socket == nil {
            request["command"] = "chat"
            request["agent"] = .string(agent)
        }
        if noStream { request["stream"] = false }
        let options = try requestOptions()
        if !options.isEmpty { request["options"] = .object(options) }
        let interactive = text == nil && isatty(STDIN_FILENO) == 1
        let input = interactive ? "" : text ?? readStandardInput()
        guard interactive || !input.isEmpty else {
            throw AgentctlError(
                exitCode: AgentctlExit.usage, message: "no message: give TEXT or pipe it on standard input")
        }
        let daemon =
            try socket.map { path throws(AgentctlError) in try DaemonSession(path: path) } ?? connection.connect()
        if interactive {
            // A name of its own, so that two chats at once never share a history.
            let name = session ?? "chat-\(getpid())-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
            return try InteractiveChat(connection: daemon, base: request, session: name, json: json).run()
        }
        request["id"] = 1
        request["input"] = .string(input)
        if let session { request["session"] = .string(session) }
        var printer = ReplyPrinter(json: json)
        defer { printer.finish() }
        try daemon.exchange(.object(request)) { event, line in printer.handle(event, line: line) }
    }

    /// `--option key=value` pairs as the request's `options` object.
    private func requestOptions() throws(ValidationError) -> JSONObject {
        var object = JSONObject()
        for option in options {
            guard let equals = option.firstIndex(of: "="), equals != option.startIndex else {
                throw ValidationError("--option \(option): expected key=value, e.g. temperature=0.2")
            }
            let key = String(option[..<equals])
            guard object[key] == nil else { throw ValidationError("--option \(key): given twice") }
            let value = String(option[option.index(after: equals)...])
            object[key] = (try? JSONParser.parse(value)) ?? .string(value)
        }
        return object
    }

    /// All of standard input, without the trailing newlines a shell pipeline adds.
    private func readStandardInput() -> String {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(STDIN_FILENO, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            bytes.append(contentsOf: buffer[0..<count])
        }
        while let last = bytes.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Prints a chat's events: reply text to stdout as it arrives, tool calls to stderr, or
/// every event line as received with `--json`.
struct ReplyPrinter {
    let json: Bool
    /// Whether stdout holds reply text not yet ended by a newline.
    private var lineOpen = false
    /// Whether deltas or tool calls arrived: then `done` repeats what is already printed.
    private var streamed = false
    /// Whether stderr holds reasoning text not yet ended by a newline.
    private var reasoningOpen = false
    private let stderrStyle = Style(descriptor: STDERR_FILENO)

    init(json: Bool) { self.json = json }

    mutating func handle(_ event: ReceivedEvent, line: [UInt8]) {
        if json { return Output.raw(line) }
        switch event.kind {
        case .delta(let text):
            streamed = true
            endReasoning()
            write(text)
        case .toolCall(let call):
            streamed = true
            printToolCall(call)
        case .reasoning(let text):
            streamed = true
            reasoningOpen = !text.hasSuffix("\n")
            Output.write(stderrStyle.dim(text), to: STDERR_FILENO)
        case .toolExecution(let execution) where execution.state != .delta:
            Output.error(stderrStyle.dim("\(execution.name) \(execution.state.rawValue)"))
        case .citation(let citation):
            Output.error(stderrStyle.dim("source: \(citation.title)\(citation.url.map { " <\($0)>" } ?? "")"))
        case .file(let file):
            Output.error(stderrStyle.dim("file from \(file.tool): \(file.fileName ?? file.fileID)"))
        case .handoff(let handoff) where handoff.state == .done:
            Output.error(stderrStyle.dim("handed off to \(handoff.agentName ?? handoff.agentID ?? "another agent")"))
        case .done(let done):
            // Without streaming, nothing came before: the whole reply is in `done`.
            if !streamed {
                write(done.text)
                for call in done.toolCalls { printToolCall(call) }
            }
        case .start, .error, .result, .other, .toolExecution, .handoff:
            break
        }
    }

    /// Ends the reasoning's line on stderr before the reply starts.
    private mutating func endReasoning() {
        if reasoningOpen { Output.write("\n", to: STDERR_FILENO) }
        reasoningOpen = false
    }

    /// Ends the reply with a newline, so the shell prompt starts on its own line.
    mutating func finish() {
        endReasoning()
        if lineOpen { Output.write("\n") }
        lineOpen = false
    }

    private mutating func write(_ text: String) {
        guard !text.isEmpty else { return }
        Output.write(text)
        lineOpen = !text.hasSuffix("\n")
    }

    private func printToolCall(_ call: ToolCall) {
        let arguments = call.arguments.stringValue ?? call.arguments.jsonText
        let id = call.id.isEmpty ? "" : " [\(call.id)]"
        Output.error(stderrStyle.dim("tool call\(id): ") + stderrStyle.bold(call.name) + "(\(arguments))")
    }
}
