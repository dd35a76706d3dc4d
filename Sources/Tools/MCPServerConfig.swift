/// One MCP server as `agentd.yaml` defines it (contract §3 `mcp_servers`): how to start it and
/// what of it agents may use.
///
/// A plain value, Foundation-free like ``ExecTool``, so that AgentCore can read and check it
/// without the SDK. Equality is what a reload compares: an unchanged server keeps its process.
public struct MCPServerConfig: Sendable, Hashable {
    /// What `timeout` is when the file does not say.
    public static let defaultTimeout: Duration = .seconds(30)
    /// A tool's name as the model sees it is `<server>__<tool>`; Mistral takes at most 64
    /// characters, so the server's name leaves room for the separator and a one-letter tool.
    public static let maxNameLength = 61
    /// Between a server's name and its tool's in the names the model sees.
    public static let separator = "__"

    /// The key under `mcp_servers`.
    public var name: String
    /// argv; the first element is an absolute path (no `PATH` search, as for exec tools).
    public var command: [String]
    /// The server's whole environment, plus `PATH=/usr/bin:/bin` unless it sets `PATH`. Values
    /// may be secrets: they are never logged.
    public var env: [String: String]
    /// Bounds each request to the server: `initialize`, each `tools/list` page, each call.
    public var timeout: Duration
    /// The server's tools that agents see; nil: every tool it lists.
    public var tools: [String]?

    public init(
        name: String, command: [String], env: [String: String] = [:], timeout: Duration = defaultTimeout,
        tools: [String]? = nil
    ) {
        self.name = name
        self.command = command
        self.env = env
        self.timeout = timeout
        self.tools = tools
    }

    /// Whether the names `<name>__<tool>` can be Mistral function names and split back
    /// unambiguously: `^[a-zA-Z0-9_-]{1,61}$` without `__` and not ending in `_`.
    public static func isValidName(_ name: String) -> Bool {
        guard (1...maxNameLength).contains(name.utf8.count), !name.contains(separator), !name.hasSuffix("_") else {
            return false
        }
        return name.utf8.allSatisfy(isFunctionNameByte)
    }

    /// `^[a-zA-Z0-9_-]{1,64}$`: what Mistral accepts as a function name.
    public static func isValidFunctionName(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count) && name.utf8.allSatisfy(isFunctionNameByte)
    }

    /// The name the model sees for `tool` of server `server`.
    public static func qualifiedName(server: String, tool: String) -> String { server + separator + tool }

    /// The server and tool a qualified name stands for; nil when it has no separator.
    public static func split(_ qualified: String) -> (server: String, tool: String)? {
        guard let range = qualified.firstRange(of: separator) else { return nil }
        return (String(qualified[..<range.lowerBound]), String(qualified[range.upperBound...]))
    }

    private static func isFunctionNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default: false
        }
    }
}
