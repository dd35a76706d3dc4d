#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where Mistral is and the key to reach it, resolved per CONTRACT §3.
///
/// The key is kept out of `description` and `dump`-style output: only its source is shown.
public struct MistralSettings: Sendable, Equatable, CustomStringConvertible {
    public var baseURL: String
    public var apiKey: String?
    /// Where the key came from (`"/etc/agentd/mistral-api-key"`, `"MISTRAL_API_KEY"`), nil if none.
    public var apiKeySource: String?
    /// Sources that were named but unusable (an unreadable or empty key file), for a start-up warning.
    public var problems: [String]

    /// First found wins: the `mistral.api_key_file` the caller names; then
    /// `$CREDENTIALS_DIRECTORY/mistral-api-key` (systemd `LoadCredential=`); then
    /// `$MISTRAL_API_KEY`. `$MISTRAL_BASE_URL` overrides `baseURL`. `environment` defaults to the
    /// process environment.
    public static func resolve(
        baseURL: String, apiKeyFile: String?, environment: [String: String]? = nil
    ) -> MistralSettings {
        let variable: (String) -> String? = { name in
            if let environment { return environment[name] }
            return getenv(name).map { String(cString: $0) }
        }
        var settings = MistralSettings(baseURL: baseURL, apiKey: nil, apiKeySource: nil, problems: [])
        if let override = variable("MISTRAL_BASE_URL"), !override.isEmpty { settings.baseURL = override }

        var files: [String] = []
        if let apiKeyFile { files.append(apiKeyFile) }
        if let directory = variable("CREDENTIALS_DIRECTORY"), !directory.isEmpty {
            files.append(directory + "/mistral-api-key")
        }
        for path in files {
            switch readKeyFile(path) {
            case .success(let key):
                settings.apiKey = key
                settings.apiKeySource = path
                return settings
            case .failure(let problem) where path == apiKeyFile:
                settings.problems.append("mistral.api_key_file \(path): \(problem)")
            case .failure:
                // A credentials directory without our credential is normal: other units share the mechanism.
                continue
            }
        }
        if let key = variable("MISTRAL_API_KEY")?.trimmingWhitespace, !key.isEmpty {
            settings.apiKey = key
            settings.apiKeySource = "MISTRAL_API_KEY"
        }
        return settings
    }

    public var description: String {
        "MistralSettings(baseURL: \(baseURL), apiKey: \(apiKeySource.map { "from \($0)" } ?? "none"))"
    }

    private struct FileProblem: Error, CustomStringConvertible {
        var description: String
    }

    /// The file's first line, trimmed. Problems never quote the content.
    private static func readKeyFile(_ path: String) -> Result<String, FileProblem> {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return .failure(FileProblem(description: String(cString: strerror(errno)))) }
        defer { close(descriptor) }
        var content: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while content.count < 65_536 {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return .failure(FileProblem(description: String(cString: strerror(errno))))
            }
            if count == 0 { break }
            content.append(contentsOf: buffer[..<count])
        }
        let firstLine = String(decoding: content, as: UTF8.self).split(whereSeparator: \.isNewline).first
        guard let key = firstLine.map({ String($0).trimmingWhitespace }), !key.isEmpty else {
            return .failure(FileProblem(description: "the file is empty"))
        }
        return .success(key)
    }
}
