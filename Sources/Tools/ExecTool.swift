import Glibc
import JSON

/// A server tool that agentd runs as a child process (contract §9, "Exec tools").
///
/// A plain value: the agent loader builds one from a tool's `exec`, `timeout`, `max_output`,
/// `env` and `cwd` keys, checks it with ``problems(parameters:)``, and hands it to
/// ``ExecToolRunner`` for every call the model makes.
public struct ExecTool: Sendable, Hashable {
    /// What `timeout` is when the agent file does not say.
    public static let defaultTimeout: Duration = .seconds(30)
    /// What `max_output` is when the agent file does not say.
    public static let defaultMaxOutput = 64 * 1024
    /// The largest `max_output` accepted: the output becomes part of the next model request,
    /// so more than this would only be rejected upstream after costing agentd the memory.
    public static let maxOutputLimit = 16 * 1024 * 1024

    /// The argv template. The first element is the executable's absolute path (no `PATH`
    /// search: what runs must not depend on the environment); elements that are exactly
    /// `"{param}"` are replaced by that argument on each call.
    public var argv: [String]
    /// How long a call may run before its process group is sent SIGTERM, then SIGKILL.
    public var timeout: Duration
    /// How many bytes of stdout are kept; the rest is read and discarded.
    public var maxOutput: Int
    /// The tool's whole environment, to which only `PATH=/usr/bin:/bin` is added (unless it
    /// sets `PATH` itself): nothing of agentd's own environment reaches a tool.
    public var env: [String: String]
    /// The working directory; `nil` means the runner's default (agentd's state directory).
    public var cwd: String?

    public init(
        argv: [String],
        timeout: Duration = ExecTool.defaultTimeout,
        maxOutput: Int = ExecTool.defaultMaxOutput,
        env: [String: String] = [:],
        cwd: String? = nil
    ) {
        self.argv = argv
        self.timeout = timeout
        self.maxOutput = maxOutput
        self.env = env
        self.cwd = cwd
    }
}

/// One thing wrong with an ``ExecTool`` definition, worded for the person who wrote the agent
/// file. The loader prefixes the file and line of the offending key.
public struct ExecToolProblem: Sendable, Hashable, CustomStringConvertible {
    public enum Code: Sendable, Hashable {
        case emptyArgv
        case relativeExecutable(String)
        case executableMissing(String)
        /// `stat` failed for another reason than absence, e.g. a directory on the way is unreadable.
        case executableInaccessible(String, reason: String)
        case executableNotRegularFile(String)
        case executableNotExecutable(String)
        /// An argv element `"{name}"` whose name is not a property of `parameters`.
        case unknownParameter(name: String, argvIndex: Int)
        case invalidEnvironmentName(String)
        case maxOutputTooLarge(Int)
        case maxOutputNotPositive(Int)
        case timeoutNotPositive(Duration)
    }

    public var code: Code

    public init(_ code: Code) {
        self.code = code
    }

    public var description: String {
        switch code {
        case .emptyArgv:
            return "exec is empty: it needs at least the executable's absolute path"
        case .relativeExecutable(let path):
            return "exec executable \"\(path)\" is not an absolute path (no PATH search is done)"
        case .executableMissing(let path):
            return "exec executable \"\(path)\" does not exist"
        case .executableInaccessible(let path, let reason):
            return "exec executable \"\(path)\" cannot be examined: \(reason)"
        case .executableNotRegularFile(let path):
            return "exec executable \"\(path)\" is not a regular file"
        case .executableNotExecutable(let path):
            return "exec executable \"\(path)\" is not executable"
        case .unknownParameter(let name, let argvIndex):
            return "exec[\(argvIndex)] \"{\(name)}\" names no property of parameters"
        case .invalidEnvironmentName(let name):
            return "env name \"\(name)\" does not match ^[A-Za-z_][A-Za-z0-9_]*$"
        case .maxOutputTooLarge(let bytes):
            return "max_output \(bytes) bytes is over the limit of \(ExecTool.maxOutputLimit) bytes (16MiB)"
        case .maxOutputNotPositive(let bytes):
            return "max_output \(bytes) must be at least 1 byte"
        case .timeoutNotPositive(let timeout):
            return "timeout \(timeout) must be longer than zero"
        }
    }
}

extension ExecTool {
    /// Every problem with this definition, in the order exec, env, max_output, timeout; empty
    /// when it is sound.
    ///
    /// - Parameter parameters: the tool's JSON-schema `parameters` object, whose `properties`
    ///   every `"{param}"` must name; `nil` where the schema lives elsewhere (agent mode: the
    ///   Mistral agent declares it), and then placeholders are not checked.
    /// - Note: Looks at the file system, so a definition is sound only as of loading: an
    ///   executable removed later is reported by ``ExecToolRunner`` as a failed call.
    public func problems(parameters: JSONObject?) -> [ExecToolProblem] {
        var problems: [ExecToolProblem] = []
        if let executable = argv.first {
            if let problem = Self.executableProblem(executable) {
                problems.append(ExecToolProblem(problem))
            }
        } else {
            problems.append(ExecToolProblem(.emptyArgv))
        }
        if let parameters {
            let properties = parameters["properties"]?.objectValue ?? JSONObject()
            for (index, element) in argv.enumerated().dropFirst() {
                if let name = ArgvTemplate.placeholderName(element), properties[name] == nil {
                    problems.append(ExecToolProblem(.unknownParameter(name: name, argvIndex: index)))
                }
            }
        }
        for name in env.keys.sorted() where !Self.isValidEnvironmentName(name) {
            problems.append(ExecToolProblem(.invalidEnvironmentName(name)))
        }
        if maxOutput > Self.maxOutputLimit {
            problems.append(ExecToolProblem(.maxOutputTooLarge(maxOutput)))
        } else if maxOutput < 1 {
            problems.append(ExecToolProblem(.maxOutputNotPositive(maxOutput)))
        }
        if timeout <= .zero {
            problems.append(ExecToolProblem(.timeoutNotPositive(timeout)))
        }
        return problems
    }

    /// `^[A-Za-z_][A-Za-z0-9_]*$`: what a shell would accept, so a tool that is itself a script
    /// can read every variable it was given.
    private static func isValidEnvironmentName(_ name: String) -> Bool {
        guard let first = name.utf8.first, first == UInt8(ascii: "_") || isASCIILetter(first) else {
            return false
        }
        return name.utf8.allSatisfy { $0 == UInt8(ascii: "_") || isASCIILetter($0) || isASCIIDigit($0) }
    }

    private static func isASCIILetter(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
    }

    private static func isASCIIDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    private static func executableProblem(_ path: String) -> ExecToolProblem.Code? {
        guard path.hasPrefix("/") else { return .relativeExecutable(path) }
        var status = stat()
        guard stat(path, &status) == 0 else {
            let statErrno = errno
            if statErrno == ENOENT || statErrno == ENOTDIR { return .executableMissing(path) }
            return .executableInaccessible(path, reason: String(cString: strerror(statErrno)))
        }
        guard status.st_mode & S_IFMT == S_IFREG else { return .executableNotRegularFile(path) }
        guard access(path, X_OK) == 0 else { return .executableNotExecutable(path) }
        return nil
    }
}
