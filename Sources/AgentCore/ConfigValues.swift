/// Parsers for the value formats of the configuration files.
enum ConfigValues {
    /// `500ms`, `30s`, `2m`: a positive whole number and one of those units. Hours are left
    /// out on purpose, since every timeout agentd has is measured in seconds or minutes, except
    /// where `hours` allows them: a session's ttl (contract §3 `sessions: {ttl: 24h}`).
    static func duration(_ text: String, hours: Bool = false) -> Result<Duration, OptionProblem> {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        let unit = text.dropFirst(digits.count)
        let example = hours ? "a duration such as 30s, 2m or 24h" : "a duration such as 500ms, 30s or 2m"
        guard !digits.isEmpty, let amount = Int64(digits) else {
            return .failure(OptionProblem("expected \(example), got '\(text)'"))
        }
        let duration: Duration
        switch unit {
        case "ms": duration = .milliseconds(amount)
        case "s": duration = .seconds(amount)
        case "m" where amount <= Int64.max / 60: duration = .seconds(amount * 60)
        case "h" where hours && amount <= Int64.max / 3600: duration = .seconds(amount * 3600)
        case "": return .failure(OptionProblem("'\(text)' has no unit; expected \(example)"))
        default:
            return .failure(
                OptionProblem("unknown unit '\(unit)' in '\(text)'; use ms, s\(hours ? ", m or h" : " or m")"))
        }
        guard duration > .zero else { return .failure(OptionProblem("must be longer than zero, got '\(text)'")) }
        return .success(duration)
    }

    /// `"0660"` or `"660"`: permission bits only (no setuid, setgid or sticky bit).
    static func octalMode(_ text: String) -> Result<UInt32, OptionProblem> {
        let digits = text.hasPrefix("0o") ? text.dropFirst(2) : Substring(text)
        guard (3...4).contains(digits.count), let mode = UInt32(digits, radix: 8) else {
            return .failure(OptionProblem("expected an octal mode such as \"0660\", got '\(text)'"))
        }
        guard mode <= 0o777 else {
            return .failure(OptionProblem("mode '\(text)' sets bits beyond the permission bits (0777)"))
        }
        return .success(mode)
    }

    /// `65536`, `512B`, `64KiB`, `1MiB`, `1GiB`: a whole number of bytes, with an optional binary unit.
    static func byteSize(_ text: String) -> Result<Int, OptionProblem> {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        let unit = text.dropFirst(digits.count)
        guard !digits.isEmpty, let amount = Int(digits) else {
            return .failure(OptionProblem("expected a size such as 65536, 64KiB or 1MiB, got '\(text)'"))
        }
        let shift: Int
        switch unit {
        case "", "B": shift = 0
        case "KiB": shift = 10
        case "MiB": shift = 20
        case "GiB": shift = 30
        default: return .failure(OptionProblem("unknown unit '\(unit)' in '\(text)'; use B, KiB, MiB or GiB"))
        }
        guard amount <= Int.max >> shift else { return .failure(OptionProblem("'\(text)' is too large")) }
        return .success(amount << shift)
    }
}
