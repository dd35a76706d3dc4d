import JSON
import LLM
import Tools
import YAML

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The outcome of loading an agents directory: every file either loaded or has diagnostics.
public struct AgentDirectory: Sendable, Equatable {
    /// The files that loaded, sorted by name.
    public var agents: [AgentDefinition]
    /// File path -> its diagnostics, for every file that did not load.
    public var failures: [String: [Diagnostic]]

    public init(agents: [AgentDefinition], failures: [String: [Diagnostic]]) {
        self.agents = agents
        self.failures = failures
    }

    /// Every diagnostic, sorted by file, line and column.
    public var diagnostics: [Diagnostic] { failures.values.flatMap { $0 }.sorted(by: Diagnostic.byPosition) }
}

/// Loads agent definitions (CONTRACT §2) with a diagnostic for every problem.
public enum AgentLoader {
    /// What an agent name (the file stem) must look like.
    public static let namePattern = "^[a-z0-9][a-z0-9_-]{0,62}$"
    /// The extensions of agent files in a directory; other files and dotfiles are ignored.
    public static let fileExtensions = [".yaml", ".yml"]

    public static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...63).contains(bytes.count), isLowerAlphanumeric(bytes[0]) else { return false }
        return bytes.allSatisfy { isLowerAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    private static func isLowerAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    /// Loads one file; the agent's name is the file name without its extension. Symlinks are
    /// followed.
    ///
    /// - Parameter mcpServers: the servers agentd.yaml defines, which `mcp_servers` may name;
    ///   nil where agentd.yaml is not known (`agentctl validate`), and then names are not checked.
    public static func loadFile(_ path: String, mcpServers: Set<String>? = nil) -> Result<
        AgentDefinition, DiagnosticList
    > {
        let fileLevel = { (message: String) in
            Result<AgentDefinition, DiagnosticList>.failure(
                DiagnosticList([Diagnostic(file: path, line: 1, column: 1, message: message)]))
        }
        let bytes: [UInt8]
        do {
            bytes = try ConfigFile.contents(of: path)
        } catch {
            switch error {
            case .missing: return fileLevel("cannot open file: No such file or directory")
            case .failed(let message): return fileLevel(message)
            }
        }
        switch ConfigFile.parse(bytes, file: path) {
        case .failure(let diagnostics): return .failure(diagnostics)
        case .success(let root): return definition(from: root, file: path, name: stem(of: path), mcpServers: mcpServers)
        }
    }

    /// Loads every `*.yaml` and `*.yml` file of `path`. Throws only when the directory itself
    /// cannot be read; a bad file never hides the others.
    public static func loadDirectory(_ path: String, mcpServers: Set<String>? = nil) throws(Diagnostic)
        -> AgentDirectory
    {
        let files = try agentFiles(in: path)
        var agents: [AgentDefinition] = []
        var failures: [String: [Diagnostic]] = [:]
        for file in files {
            switch loadFile(file, mcpServers: mcpServers) {
            case .success(let agent): agents.append(agent)
            case .failure(let list): failures[file] = list.diagnostics
            }
        }
        // Two files for one name (`x.yaml` and `x.yml`): neither is loaded, since which one
        // was meant cannot be known.
        let byName = Dictionary(grouping: files, by: { stem(of: $0) })
        for (name, paths) in byName where paths.count > 1 {
            for file in paths {
                let others = paths.filter { $0 != file }.map(basename).joined(separator: ", ")
                let diagnostic = Diagnostic(
                    file: file, line: 1, column: 1,
                    message: "agent '\(name)' is also defined by \(others); each agent needs exactly one file")
                failures[file, default: []].insert(diagnostic, at: 0)
            }
            agents.removeAll { $0.name == name }
        }
        return AgentDirectory(agents: agents.sorted { $0.name < $1.name }, failures: failures)
    }

    /// The agent files of a directory, sorted.
    static func agentFiles(in path: String) throws(Diagnostic) -> [String] {
        guard let directory = opendir(path) else {
            throw Diagnostic(
                file: path, line: 0, column: 0,
                message: "cannot read agents directory: \(String(cString: strerror(errno)))")
        }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            guard !name.hasPrefix("."), fileExtensions.contains(where: { name.hasSuffix($0) }) else { continue }
            names.append(name)
        }
        let separator = path.hasSuffix("/") ? "" : "/"
        return names.sorted().map { path + separator + $0 }
    }

    static func basename(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: true).last.map(String.init) ?? path
    }

    /// The file name without its extension.
    static func stem(of path: String) -> String {
        let name = basename(path)
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return name }
        return String(name[..<dot])
    }

    /// An agent definition from a parsed file.
    static func definition(
        from root: YAMLNode?, file: String, name: String, mcpServers: Set<String>? = nil
    ) -> Result<AgentDefinition, DiagnosticList> {
        var reader = AgentFileReader(checker: NodeChecker(file: file), knownMCPServers: mcpServers)
        let agent = reader.read(root, name: name)
        let diagnostics = reader.checker.diagnostics
        if let agent, diagnostics.isEmpty { return .success(agent) }
        return .failure(DiagnosticList(diagnostics))
    }
}

/// Reads the keys of one agent file, in the order that lets later keys be checked against
/// earlier ones (mode before everything, tools before tool_choice).
private struct AgentFileReader {
    var checker: NodeChecker
    /// What `mcp_servers` may name; nil: not checked.
    var knownMCPServers: Set<String>?

    private static let structureKeys = [
        "description", "mode", "model", "agent_id", "agent_api", "system", "tools", "socket", "allow", "limits",
        "retry", "reasoning", "max_steps", "sessions", "mcp_servers",
    ]
    private static let topLevelKeys = structureKeys + OptionRules.keys
    /// Keys that only one mode accepts, with the reason given when the other mode uses them.
    private static let modeOnlyKeys: [String: (mode: AgentMode, reason: String)] = [
        "system": (.normal, "is only valid in normal mode: in agent mode the Mistral agent owns its instructions"),
        "agent_id": (.agent, "is only valid in agent mode (add `mode: agent`)"),
        "agent_api": (.agent, "is only valid in agent mode (add `mode: agent`)"),
    ]

    mutating func read(_ root: YAMLNode?, name: String) -> AgentDefinition? {
        let start = Mark(line: 1, column: 1)
        if !AgentLoader.isValidName(name) {
            checker.error(
                at: start,
                "agent name '\(name)' (the file name without its extension) must match \(AgentLoader.namePattern)")
        }
        guard let root else {
            checker.error(at: start, "empty file: expected a mapping with at least `model` or `agent_id`")
            return nil
        }
        guard let fields = checker.fields(of: root, path: "", known: Self.topLevelKeys) else { return nil }

        let mode = readMode(fields)
        for field in fields.all {
            if let rule = Self.modeOnlyKeys[field.name], rule.mode != mode {
                checker.error(field.key, "'\(field.name)' \(rule.reason)")
            }
        }
        let upstream = readUpstream(fields, mode: mode, rootMark: root.mark)
        let (tools, execTools) = fields["tools"].map { readTools($0, mode: mode) } ?? ([], [:])
        let agentAPI: AgentAPI? =
            switch upstream {
            case .conversations: .conversations
            case .agentCompletions: .completions
            case .chatCompletions, nil: nil
            }
        let context = OptionContext(mode: mode, agentAPI: agentAPI, toolNames: tools.map(\.name))
        let options = readOptions(fields, context: context)
        var agent = AgentDefinition(
            name: name, file: checker.file, mode: mode, upstream: upstream ?? .chatCompletions(model: ""),
            tools: tools, execTools: execTools, options: options)
        if let node = fields["max_steps"] {
            agent.maxSteps =
                checker.integer(node, path: "max_steps", in: 1...AgentDefinition.maxStepsLimit) ?? agent.maxSteps
        }
        if let node = fields["mcp_servers"] { agent.mcpServers = readMCPServers(node, ownTools: tools, execTools) }
        if let node = fields["description"] { agent.description = checker.string(node, path: "description") }
        if mode == .normal, let node = fields["system"] {
            agent.system = checker.strings(node, path: "system", allowSingle: true)?.map { $0.0 } ?? []
        }
        if let node = fields["socket"] { agent.socket = readSocket(node) ?? agent.socket }
        if let node = fields["allow"] { agent.allow = readAllow(node) }
        if let node = fields["limits"] { agent.limits = readLimits(node) ?? agent.limits }
        if let node = fields["retry"] { agent.retry = readRetry(node) ?? agent.retry }
        if let node = fields["reasoning"],
            let choice = checker.choice(node, path: "reasoning", from: ReasoningVisibility.allCases.map(\.rawValue))
        {
            agent.reasoning = ReasoningVisibility(rawValue: choice) ?? .stream
        }
        if let node = fields["sessions"] { agent.sessions = readSessions(node) }
        return upstream == nil ? nil : agent
    }

    private mutating func readMode(_ fields: Fields) -> AgentMode {
        guard let node = fields["mode"] else { return .normal }
        if let text = checker.choice(node, path: "mode", from: AgentMode.allCases.map(\.rawValue)) {
            return AgentMode(rawValue: text) ?? .normal
        }
        // Judge the other keys by the mode the file most likely meant.
        return fields["agent_id"] == nil ? .normal : .agent
    }

    private static func isAgentID(_ text: String) -> Bool {
        let body = text.dropFirst(3)
        guard text.hasPrefix("ag_") || text.hasPrefix("ag:"), !body.isEmpty else { return false }
        return body.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_-:.".contains($0)) }
    }

    private mutating func readUpstream(_ fields: Fields, mode: AgentMode, rootMark: Mark) -> Upstream? {
        let model = fields["model"].flatMap { checker.nonEmptyString($0, path: "model") }
        switch mode {
        case .normal:
            guard let modelNode = fields["model"] else {
                checker.error(at: rootMark, "missing 'model' (required in normal mode)")
                return nil
            }
            guard let model else { return nil }
            if Self.isAgentID(model) {
                checker.error(modelNode, "model: '\(model)' is a Mistral agent id; add `mode: agent` to use it")
                return nil
            }
            return .chatCompletions(model: model)
        case .agent:
            var agentID: String?
            if let node = fields["agent_id"] {
                agentID = checker.nonEmptyString(node, path: "agent_id")
                if let modelKey = fields.key("model") {
                    checker.error(modelKey, "'model' and 'agent_id' both given; in agent mode give only agent_id")
                    return nil
                }
                if let id = agentID, !Self.isAgentID(id) {
                    checker.error(node, "agent_id: '\(id)' is not a Mistral agent id (ag_... or ag:...)")
                    return nil
                }
            } else if let modelNode = fields["model"] {
                guard let model else { return nil }
                guard Self.isAgentID(model) else {
                    checker.error(
                        modelNode,
                        "model: in agent mode 'model' only stands for agent_id and must be an agent id (ag_... or ag:...), got '\(model)'; the Mistral agent chooses its model"
                    )
                    return nil
                }
                agentID = model
            } else {
                checker.error(at: rootMark, "missing 'agent_id' (required in agent mode)")
                return nil
            }
            guard let agentID else { return nil }
            let api = fields["agent_api"].map {
                checker.choice($0, path: "agent_api", from: AgentAPI.allCases.map(\.rawValue))
                    .flatMap(AgentAPI.init(rawValue:))
            }
            switch api {
            case nil, .conversations?: return .conversations(agentID: agentID)
            case .completions?: return .agentCompletions(agentID: agentID)
            case .some(nil): return nil
            }
        }
    }

    private static let toolKeys = ["name", "description", "parameters", "exec", "timeout", "max_output", "env", "cwd"]
    private static let schemaKeys: Set<String> = ["description", "parameters"]

    /// The tools' schemas (normal mode) and the tools agentd runs (those with `exec`). In agent
    /// mode a tool only implements a function the Mistral agent declares: `exec` and its
    /// settings, no schema.
    private mutating func readTools(_ node: YAMLNode, mode: AgentMode) -> ([ToolSpec], [String: ExecTool]) {
        guard let items = node.sequence else {
            checker.error(node, "tools: expected a list of tools, got \(node.kindName)")
            return ([], [:])
        }
        var tools: [ToolSpec] = []
        var execTools: [String: ExecTool] = [:]
        var firstMark: [String: Mark] = [:]
        for (index, item) in items.enumerated() {
            let path = "tools[\(index)]"
            guard let fields = checker.fields(of: item, path: path, known: Self.toolKeys) else { continue }
            guard let nameNode = fields["name"] else {
                checker.error(item, "\(path): missing 'name'")
                continue
            }
            guard let name = checker.string(nameNode, path: "\(path).name") else { continue }
            guard name.utf8.count <= 64, !name.isEmpty,
                name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") })
            else {
                checker.error(nameNode, "\(path).name: '\(name)' must match ^[a-zA-Z0-9_-]{1,64}$")
                continue
            }
            if let first = firstMark[name] {
                checker.error(nameNode, "\(path).name: duplicate tool name '\(name)' (first at \(first))")
                continue
            }
            firstMark[name] = nameNode.mark
            if mode == .agent {
                for field in fields.all where Self.schemaKeys.contains(field.name) {
                    checker.error(
                        field.key,
                        "\(path).\(field.name): is only valid in normal mode: in agent mode the Mistral agent declares its functions, and a tool entry only implements one with exec"
                    )
                }
                guard fields["exec"] != nil else {
                    checker.error(
                        item,
                        "\(path): needs 'exec' in agent mode, to implement the function the Mistral agent declares")
                    continue
                }
            }
            var tool = ToolSpec(name: name, parameters: ["type": "object", "properties": [:]])
            if mode == .normal, let description = fields["description"] {
                tool.description = checker.string(description, path: "\(path).description") ?? ""
            }
            if mode == .normal, let parameters = fields["parameters"] {
                guard let schema = checker.json(parameters, path: "\(path).parameters") else { continue }
                guard schema.objectValue != nil, schema["type"] == "object" else {
                    checker.error(
                        parameters, "\(path).parameters: must be a JSON Schema object with `type: object`")
                    continue
                }
                tool.parameters = schema
            }
            if fields["exec"] != nil {
                guard let exec = readExec(fields, path: path, parameters: mode == .normal ? tool.parameters : nil)
                else { continue }
                execTools[name] = exec
            } else if let key = Self.execOnlyKeys.lazy.compactMap({ fields.key($0) }).first {
                checker.error(key, "\(path): '\(key.scalar?.text ?? "")' only applies to a tool with 'exec'")
                continue
            }
            if mode == .normal { tools.append(tool) }
        }
        return (tools, execTools)
    }

    private static let execOnlyKeys = ["timeout", "max_output", "env", "cwd"]

    /// `mcp_servers`: names of servers in agentd.yaml, each once. An own tool named
    /// `<server>__...` would take a name the server's tools may need, so it is an error too.
    private mutating func readMCPServers(
        _ node: YAMLNode, ownTools: [ToolSpec], _ execTools: [String: ExecTool]
    ) -> [String] {
        guard let names = checker.strings(node, path: "mcp_servers", allowSingle: false) else { return [] }
        let ownNames = Set(ownTools.map(\.name)).union(execTools.keys)
        var servers: [String] = []
        var seen = Set<String>()
        for (index, (name, item)) in names.enumerated() {
            let path = "mcp_servers[\(index)]"
            if !seen.insert(name).inserted {
                checker.error(item, "\(path): '\(name)' is named twice")
            } else if !MCPServerConfig.isValidName(name) {
                checker.error(item, "\(path): '\(name)' is not a valid MCP server name")
            } else if let known = knownMCPServers, !known.contains(name) {
                let hint = Hints.nearest(to: name, among: known.sorted()).map { " (did you mean '\($0)'?)" } ?? ""
                let defined =
                    known.isEmpty
                    ? "agentd.yaml defines none" : "agentd.yaml defines \(known.sorted().joined(separator: ", "))"
                checker.error(item, "\(path): no MCP server '\(name)' in agentd.yaml's mcp_servers\(hint); \(defined)")
            } else if let clash = ownNames.sorted().first(where: { $0.hasPrefix(name + MCPServerConfig.separator) }) {
                checker.error(
                    item,
                    "\(path): the agent's own tool '\(clash)' takes a name of the form \(name)__TOOL, which the server's tools use"
                )
            } else {
                servers.append(name)
            }
        }
        return servers
    }

    /// A server tool's `exec` and its settings, each problem reported at its own key.
    private mutating func readExec(_ fields: Fields, path: String, parameters: JSONValue?) -> ExecTool? {
        guard let execNode = fields["exec"],
            let argv = checker.strings(execNode, path: "\(path).exec", allowSingle: false)
        else { return nil }
        var tool = ExecTool(argv: argv.map(\.0))
        if let node = fields["timeout"] {
            tool.timeout = checker.duration(node, path: "\(path).timeout") ?? tool.timeout
        }
        if let node = fields["max_output"] {
            tool.maxOutput = checker.byteSize(node, path: "\(path).max_output") ?? tool.maxOutput
        }
        if let node = fields["env"] {
            for entry in checker.stringMap(node, path: "\(path).env") ?? [] { tool.env[entry.key] = entry.value }
        }
        if let node = fields["cwd"], let cwd = checker.string(node, path: "\(path).cwd") {
            guard cwd.hasPrefix("/") else {
                checker.error(node, "\(path).cwd: '\(cwd)' must be an absolute path")
                return nil
            }
            tool.cwd = cwd
        }
        let problems = tool.problems(parameters: parameters?.objectValue)
        for problem in problems {
            let node: YAMLNode =
                switch problem.code {
                case .unknownParameter(_, let argvIndex):
                    argv.indices.contains(argvIndex) ? argv[argvIndex].1 : execNode
                case .invalidEnvironmentName: fields["env"] ?? execNode
                case .maxOutputTooLarge, .maxOutputNotPositive: fields["max_output"] ?? execNode
                case .timeoutNotPositive: fields["timeout"] ?? execNode
                default: execNode
                }
            checker.error(node, "\(path): \(problem)")
        }
        return problems.isEmpty ? tool : nil
    }

    private mutating func readOptions(_ fields: Fields, context: OptionContext) -> GenerationOptions {
        var options = GenerationOptions()
        for field in fields.all {
            guard let rule = OptionRules.rule(field.name) else { continue }
            if let reason = rule.unavailable(context) {
                checker.error(field.key, "'\(field.name)' \(reason)")
                continue
            }
            guard let value = checker.json(field.value, path: field.name) else { continue }
            do {
                try rule.apply(value, context, &options)
            } catch {
                checker.error(
                    field.value.descendant(at: error.path), "\(field.name)\(error.pathText): \(error.message)")
            }
        }
        return options
    }

    private mutating func readSocket(_ node: YAMLNode) -> SocketSettings? {
        guard let fields = checker.fields(of: node, path: "socket", known: ["path", "mode", "group"]) else {
            return nil
        }
        var socket = SocketSettings(mode: 0o660)
        if let node = fields["path"], let path = checker.nonEmptyString(node, path: "socket.path") {
            if !path.hasPrefix("/") {
                checker.error(node, "socket.path: must be an absolute path, got '\(path)'")
            } else if path.utf8.count > 107 {
                checker.error(node, "socket.path: longer than the 107 bytes a Unix socket path may have")
            }
            socket.path = path
        }
        if let node = fields["mode"] { socket.mode = checker.octalMode(node, path: "socket.mode") ?? socket.mode }
        if let node = fields["group"] { socket.group = checker.group(node, path: "socket.group") }
        return socket
    }

    private mutating func readAllow(_ node: YAMLNode) -> AccessList? {
        guard let fields = checker.fields(of: node, path: "allow", known: ["users", "groups"]) else { return nil }
        let users = fields["users"].flatMap { checker.strings($0, path: "allow.users", allowSingle: true) } ?? []
        let groups = fields["groups"].flatMap { checker.strings($0, path: "allow.groups", allowSingle: true) } ?? []
        if users.isEmpty, groups.isEmpty {
            checker.error(node, "allow: names no users or groups, so nobody could connect; remove it to allow everyone")
        }
        return AccessList(
            users: users.compactMap { checker.user($0.1, path: "allow.users") },
            groups: groups.compactMap { checker.group($0.1, path: "allow.groups") })
    }

    private mutating func readLimits(_ node: YAMLNode) -> Limits? {
        let known = ["max_concurrent", "queue", "timeout", "first_byte_timeout", "idle_timeout", "max_request_bytes"]
        guard let fields = checker.fields(of: node, path: "limits", known: known) else { return nil }
        var limits = Limits()
        if let node = fields["max_concurrent"] {
            limits.maxConcurrent =
                checker.integer(node, path: "limits.max_concurrent", in: 1...10_000) ?? limits.maxConcurrent
        }
        if let node = fields["queue"] {
            limits.queue = checker.integer(node, path: "limits.queue", in: 0...100_000) ?? limits.queue
        }
        if let node = fields["timeout"] {
            limits.timeouts.total = checker.duration(node, path: "limits.timeout") ?? limits.timeouts.total
        }
        if let node = fields["first_byte_timeout"] {
            limits.timeouts.firstByte =
                checker.duration(node, path: "limits.first_byte_timeout") ?? limits.timeouts.firstByte
        }
        if let node = fields["idle_timeout"] {
            limits.timeouts.idle = checker.duration(node, path: "limits.idle_timeout") ?? limits.timeouts.idle
        }
        if let node = fields["max_request_bytes"] {
            limits.maxRequestBytes =
                checker.integer(node, path: "limits.max_request_bytes", in: 1024...(64 << 20)) ?? limits.maxRequestBytes
        }
        return limits
    }

    private mutating func readSessions(_ node: YAMLNode) -> SessionOverrides {
        guard let entries = node.mapping else {
            checker.error(node, "sessions: expected a mapping, got \(node.kindName)")
            return SessionOverrides()
        }
        // max_sessions bounds the database every agent shares, so only agentd.yaml sets it.
        for entry in entries where entry.key.scalar?.text == "max_sessions" {
            checker.error(entry.key, "sessions.max_sessions: is daemon-wide; set it in agentd.yaml")
        }
        let known = SessionOverrides.keys + ["max_sessions"]
        guard let fields = checker.fields(of: node, path: "sessions", known: known) else { return SessionOverrides() }
        return checker.sessionOverrides(fields)
    }

    private mutating func readRetry(_ node: YAMLNode) -> RetryPolicy? {
        guard let fields = checker.fields(of: node, path: "retry", known: ["attempts", "base_delay", "max_delay"])
        else {
            return nil
        }
        var retry = RetryPolicy()
        if let node = fields["attempts"] {
            retry.attempts = checker.integer(node, path: "retry.attempts", in: 1...10) ?? retry.attempts
        }
        if let node = fields["base_delay"] {
            retry.baseDelay = checker.duration(node, path: "retry.base_delay") ?? retry.baseDelay
        }
        if let node = fields["max_delay"] {
            retry.maxDelay = checker.duration(node, path: "retry.max_delay") ?? retry.maxDelay
        }
        if retry.maxDelay < retry.baseDelay {
            checker.error(
                fields["max_delay"] ?? fields["base_delay"] ?? node,
                "retry: max_delay (\(retry.maxDelay)) is shorter than base_delay (\(retry.baseDelay))")
        }
        return retry
    }
}
