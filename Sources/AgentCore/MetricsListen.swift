/// Where agentd serves `GET /metrics` (`metrics.listen` in agentd.yaml, CONTRACT §3).
///
/// A bare port (`"9464"` or `":9464"`) means loopback: metrics name every agent and their
/// traffic, so they leave the machine only when an address says so (`"0.0.0.0:9464"`,
/// `"[::]:9464"`, or a host's own address).
public struct MetricsListen: Sendable, Equatable, CustomStringConvertible {
    /// A numeric IPv4 or IPv6 address, never a name: binding must not depend on DNS.
    public var host: String
    /// 0 asks the kernel for a free port (the address bound is logged).
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Parses `listen`; the error says what was expected.
    public static func parse(_ text: String) -> Result<MetricsListen, ListenError> {
        let host: Substring
        let port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                return .failure(ListenError(text))
            }
            host = text[text.index(after: text.startIndex)..<close]
            port = text[text.index(close, offsetBy: 2)...]
            guard isIPv6(host) else { return .failure(ListenError(text)) }
        } else if let colon = text.lastIndex(of: ":") {
            host = text[..<colon]
            port = text[text.index(after: colon)...]
            guard host.isEmpty || host == "localhost" || isIPv4(host) else { return .failure(ListenError(text)) }
        } else {
            host = ""
            port = Substring(text)
        }
        guard port.allSatisfy(\.isASCII), let number = Int(port), (0...65535).contains(number) else {
            return .failure(ListenError(text))
        }
        let bound = host.isEmpty || host == "localhost" ? "127.0.0.1" : String(host)
        return .success(MetricsListen(host: bound, port: number))
    }

    public struct ListenError: Error, CustomStringConvertible {
        public var text: String
        init(_ text: String) { self.text = text }
        public var description: String {
            "expected PORT, :PORT, IPV4:PORT or [IPV6]:PORT (a bare port listens on 127.0.0.1), got '\(text)'"
        }
    }

    private static func isIPv4(_ text: Substring) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4
            && parts.allSatisfy { part in
                !part.isEmpty && part.count <= 3 && part.allSatisfy(\.isASCII) && Int(part).map { $0 <= 255 } == true
            }
    }

    /// Hex groups and colons, at most one `::`; inet_pton at bind time has the last word.
    private static func isIPv6(_ text: Substring) -> Bool {
        text.contains(":") && text.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." }
            && text.split(separator: ":", omittingEmptySubsequences: false).count <= 9
    }
}
